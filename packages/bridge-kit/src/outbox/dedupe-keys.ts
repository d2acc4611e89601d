import { Keyspace, type BatchOp, type Db } from './keyspace.js'

/** The keys of events already accepted, with when: a source that replays cannot publish an event twice. */
export class DedupeKeys {
  readonly #space: Keyspace

  constructor (db: Db) {
    this.#space = new Keyspace(db, 'k!')
  }

  async has (key: string): Promise<boolean> {
    return (await this.#space.db.get(this.#space.key(key))) !== undefined
  }

  rememberOp (key: string, at: number): BatchOp {
    return { type: 'put', key: this.#space.key(key), value: String(at) }
  }

  /** Forgets keys remembered before `cutoff` (ms); returns how many. */
  async forgetBefore (cutoff: number): Promise<number> {
    const stale: string[] = []
    for await (const [key, value] of this.#space.db.iterator(this.#space.range)) {
      if (Number(value) < cutoff) stale.push(key)
    }
    if (stale.length > 0) await this.#space.db.batch(stale.map(key => ({ type: 'del' as const, key })))
    return stale.length
  }
}
