import { Keyspace, type BatchOp, type Db } from './keyspace.js'

export interface OutboxEvent {
  topic: string
  payload: Buffer
  retain?: boolean
}

export interface OutboxEntry extends OutboxEvent {
  seq: number
  acceptedAt: number
}

/** The events waiting for the broker, in order, keyed by a sequence number that never goes back. */
export class EventQueue {
  readonly #space: Keyspace

  constructor (db: Db) {
    this.#space = new Keyspace(db, 'e!')
  }

  #key (seq: number): string { return this.#space.key(String(seq).padStart(16, '0')) }

  /** How many events are stored, and the sequence number the next one gets. */
  async scan (): Promise<{ count: number, nextSeq: number }> {
    let count = 0
    let nextSeq = 1
    for await (const key of this.#space.db.keys(this.#space.range)) {
      count++
      nextSeq = Number(this.#space.name(key)) + 1
    }
    return { count, nextSeq }
  }

  appendOp (entry: OutboxEntry): BatchOp {
    const value = { topic: entry.topic, payload: entry.payload.toString('base64'), retain: entry.retain === true, acceptedAt: entry.acceptedAt }
    return { type: 'put', key: this.#key(entry.seq), value: JSON.stringify(value) }
  }

  deleteOp (seq: number): BatchOp {
    return { type: 'del', key: this.#key(seq) }
  }

  /** The oldest event. */
  async first (): Promise<OutboxEntry | undefined> {
    const [first] = await this.#space.db.iterator({ ...this.#space.range, limit: 1 }).all()
    if (first === undefined) return undefined
    const [key, value] = first
    const stored = JSON.parse(value) as { topic: string, payload: string, retain: boolean, acceptedAt: number }
    return { seq: Number(this.#space.name(key)), topic: stored.topic, payload: Buffer.from(stored.payload, 'base64'), retain: stored.retain, acceptedAt: stored.acceptedAt }
  }
}
