import { Keyspace, type BatchOp, type Db } from './keyspace.js'

/** Small named values a source keeps beside its events (the Gerrit bridge's last event time). */
export class Metadata {
  readonly #space: Keyspace

  constructor (db: Db) {
    this.#space = new Keyspace(db, 'm!')
  }

  async get (name: string): Promise<string | undefined> {
    return await this.#space.db.get(this.#space.key(name))
  }

  /** a set to write in the same batch as something else */
  setOp (name: string, value: string): BatchOp {
    return { type: 'put', key: this.#space.key(name), value }
  }

  async set (name: string, value: string): Promise<void> {
    await this.#space.db.put(this.#space.key(name), value, { sync: true })
  }
}
