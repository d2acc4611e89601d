import type { ClassicLevel } from 'classic-level'
import { openLevelStore } from '@firehose/runtime'
import type { Place } from './rule-state.js'

/** Where a rule stood when last written, for the rule as it was then (its version). */
export interface Checkpoint extends Place {
  version: string
}

/** A rule made through the API: as posted, and whose it is. */
export interface StoredRule {
  owner: string
  definition: unknown
  created: number
}

// `c!name` -> Checkpoint; `r!name` -> StoredRule. Names never hold "!" (rule.ts RULE_NAME).
const checkpointKey = (name: string): string => `c!${name}`
const ruleKey = (name: string): string => `r!${name}`

/** Where event sync keeps what outlives the process: on one broker a LevelDB, on a cluster Redis. */
export interface EventSyncBackend {
  checkpoints: () => Promise<Map<string, Checkpoint>>
  rules: () => Promise<Map<string, StoredRule>>
  writeCheckpoints: (checkpoints: ReadonlyMap<string, Checkpoint>) => Promise<void>
  /** false when the name is taken */
  putRule: (name: string, rule: StoredRule) => Promise<boolean>
  deleteRule: (name: string) => Promise<void>
  close: () => Promise<void>
}

/**
 * Event sync's LevelDB: where each rule stands (a few numbers: the events themselves are the
 * journal's), and the rules users made through the API.
 */
export class EventSyncStore implements EventSyncBackend {
  private constructor (private readonly db: ClassicLevel<string, string>) {}

  static async open (dir: string, options: { key?: string, source?: string } = {}): Promise<EventSyncStore> {
    return new EventSyncStore(await openLevelStore<string>(dir, 'utf8', { key: options.key ?? 'eventSync.dir', user: 'broker', source: options.source ?? 'event sync' }))
  }

  async checkpoints (): Promise<Map<string, Checkpoint>> {
    return await this.#all<Checkpoint>('c!')
  }

  async rules (): Promise<Map<string, StoredRule>> {
    return await this.#all<StoredRule>('r!')
  }

  async writeCheckpoints (checkpoints: ReadonlyMap<string, Checkpoint>): Promise<void> {
    if (checkpoints.size === 0) return
    await this.db.batch([...checkpoints].map(([name, c]) => ({ type: 'put' as const, key: checkpointKey(name), value: JSON.stringify(c) })))
  }

  /** Names are taken in the broker's memory (one broker keeps them): this only writes. */
  async putRule (name: string, rule: StoredRule): Promise<boolean> {
    await this.db.put(ruleKey(name), JSON.stringify(rule))
    return true
  }

  /** Forgets a rule made through the API, and where it stood. */
  async deleteRule (name: string): Promise<void> {
    await this.db.batch([{ type: 'del', key: ruleKey(name) }, { type: 'del', key: checkpointKey(name) }])
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  async #all<T> (prefix: string): Promise<Map<string, T>> {
    const out = new Map<string, T>()
    for (const [key, value] of await this.db.iterator({ gte: prefix, lt: prefix.slice(0, -1) + '"' }).all()) out.set(key.slice(prefix.length), JSON.parse(value) as T)
    return out
  }
}
