import type { ClassicLevel } from 'classic-level'

export type Db = ClassicLevel<string, string>
export type BatchOp = { type: 'put', key: string, value: string } | { type: 'del', key: string }

/**
 * One job's keys in the outbox's LevelDB, under a prefix of its own (`e!` events, `k!` dedupe
 * keys, `q!` in-flight packets, `m!` metadata): what LevelDB sublevels give, with the key
 * layout bridges already have on disk, so an upgraded bridge keeps its outbox.
 */
export class Keyspace {
  constructor (readonly db: Db, private readonly prefix: string) {}

  key (name: string): string { return this.prefix + name }

  name (key: string): string { return key.slice(this.prefix.length) }

  /** iterator bounds covering every key of this keyspace */
  get range (): { gte: string, lt: string } {
    return { gte: this.prefix, lt: this.prefix.slice(0, -1) + String.fromCharCode(this.prefix.charCodeAt(this.prefix.length - 1) + 1) }
  }
}
