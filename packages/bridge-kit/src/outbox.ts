import { mkdir } from 'node:fs/promises'
import { EventEmitter } from 'node:events'
import { ClassicLevel } from 'classic-level'
import type { Logger } from 'pino'
import { DiskMqttStore, type InflightBackend, type StoredPacket } from './mqtt-store.js'

export interface OutboxEvent {
  topic: string
  payload: Buffer
  retain?: boolean
}

export interface OutboxEntry extends OutboxEvent {
  seq: number
  acceptedAt: number
}

export type AcceptResult = 'queued' | 'duplicate'

export interface OutboxOptions {
  dir: string
  maxEvents: number
  dedupeDays: number
  logger: Logger
  now?: () => number
}

const EVENT = 'e!'
const SEEN = 'k!'
const META = 'm!'
const INFLIGHT = 'q!'
const inflightKey = (messageId: number): string => INFLIGHT + String(messageId).padStart(5, '0')
const seqKey = (seq: number): string => EVENT + String(seq).padStart(16, '0')
const THRESHOLDS = [0.5, 0.8, 1] as const

/**
 * The bridge's durable queue, in LevelDB. An event from the source is written here first
 * (synced to disk) and removed only after the broker's PUBACK, so neither a broker outage
 * nor a bridge crash loses it; on restart the outbox drains in order. It also keeps the keys
 * of accepted events for `dedupeDays`, so a source that replays (a reconnect, a gap fill)
 * cannot publish an event twice. Bounded: when full, `accept` waits — the source stops
 * reading — and the log says so loudly.
 */
export class Outbox extends EventEmitter implements InflightBackend {
  private count = 0
  private nextSeq = 1
  private chain: Promise<unknown> = Promise.resolve()
  private warned = 0
  private readonly now: () => number
  /** outbox events whose QoS 2 handshake is under way, by packet id */
  private readonly inflight = new Map<number, number | undefined>()
  /** mqtt.js's outgoing store, on this outbox's disk */
  readonly mqttStore = new DiskMqttStore(this)

  private constructor (private readonly db: ClassicLevel<string, string>, private readonly options: OutboxOptions) {
    super()
    this.now = options.now ?? Date.now
  }

  static async open (options: OutboxOptions): Promise<Outbox> {
    await mkdir(options.dir, { recursive: true })
    const db = new ClassicLevel<string, string>(options.dir, { valueEncoding: 'utf8' })
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message
      throw new Error(`outbox.dir: cannot open ${options.dir}: ${cause}${/lock/i.test(cause) ? ' (is another bridge using this directory?)' : ''}`)
    }
    const outbox = new Outbox(db, options)
    for await (const key of db.keys({ gte: EVENT, lt: 'e"' })) {
      outbox.count++
      outbox.nextSeq = Number(key.slice(EVENT.length)) + 1
    }
    for (const stored of await outbox.listInflight()) outbox.inflight.set(stored.packet.messageId!, stored.seq)
    await outbox.pruneSeen()
    if (outbox.count > 0) options.logger.info({ outboxDepth: outbox.count }, 'outbox holds events from before the restart: they are sent first, in order')
    return outbox
  }

  get depth (): number { return this.count }
  get capacity (): number { return this.options.maxEvents }

  /** Writes the event (and its dedupe key) to disk; waits while the outbox is full. */
  async accept (event: OutboxEvent, dedupeKey?: string): Promise<AcceptResult> {
    const run = this.chain.then(async () => {
      if (dedupeKey !== undefined && await this.hasSeen(dedupeKey)) return 'duplicate' as const
      while (this.count >= this.options.maxEvents) {
        await new Promise(resolve => this.once('removed', resolve))
      }
      const seq = this.nextSeq++
      const entry = { topic: event.topic, payload: event.payload.toString('base64'), retain: event.retain === true, acceptedAt: this.now() }
      const ops: Array<{ type: 'put', key: string, value: string }> = [{ type: 'put', key: seqKey(seq), value: JSON.stringify(entry) }]
      if (dedupeKey !== undefined) ops.push({ type: 'put', key: SEEN + dedupeKey, value: String(this.now()) })
      await this.db.batch(ops, { sync: true })
      this.count++
      this.checkFill()
      this.emit('added')
      return 'queued' as const
    })
    this.chain = run.catch(() => {})
    return await run
  }

  async hasSeen (key: string): Promise<boolean> {
    return (await this.db.get(SEEN + key)) !== undefined
  }

  /** The oldest event not yet acknowledged by the broker. */
  async head (): Promise<OutboxEntry | undefined> {
    for await (const [key, value] of this.db.iterator({ gte: EVENT, lt: 'e"', limit: 1 })) {
      const stored = JSON.parse(value) as { topic: string, payload: string, retain: boolean, acceptedAt: number }
      return { seq: Number(key.slice(EVENT.length)), topic: stored.topic, payload: Buffer.from(stored.payload, 'base64'), retain: stored.retain, acceptedAt: stored.acceptedAt }
    }
    return undefined
  }

  /** Resolves once every event accepted so far has left the outbox (the broker acknowledged it). */
  async flushed (): Promise<void> {
    await this.chain
    const through = this.nextSeq - 1
    for (;;) {
      const head = await this.head()
      if (head === undefined || head.seq > through) return
      await new Promise(resolve => this.once('removed', resolve))
    }
  }

  /** After the broker's PUBACK. */
  async remove (seq: number): Promise<void> {
    await this.db.del(seqKey(seq))
    this.count--
    this.checkFill()
    this.emit('removed')
  }

  /** The outbox event in a QoS 2 handshake (mqtt.js re-sends it after a reconnect), if any. */
  inflightSeq (): number | undefined {
    for (const seq of this.inflight.values()) if (seq !== undefined) return seq
    return undefined
  }

  async putInflight (messageId: number, stored: StoredPacket): Promise<void> {
    await this.db.put(inflightKey(messageId), JSON.stringify(stored), { sync: true })
    this.inflight.set(messageId, stored.seq)
  }

  async getInflight (messageId: number): Promise<StoredPacket | undefined> {
    const value = await this.db.get(inflightKey(messageId))
    return value === undefined ? undefined : JSON.parse(value) as StoredPacket
  }

  /** PUBCOMP (or PUBACK): the packet and the event it carried leave the disk in one write. */
  async completeInflight (messageId: number): Promise<StoredPacket | undefined> {
    const stored = await this.getInflight(messageId)
    if (stored === undefined) return undefined
    const ops: Array<{ type: 'del', key: string }> = [{ type: 'del', key: inflightKey(messageId) }]
    if (stored.seq !== undefined) ops.push({ type: 'del', key: seqKey(stored.seq) })
    await this.db.batch(ops, { sync: true })
    this.inflight.delete(messageId)
    if (stored.seq !== undefined) {
      this.count--
      this.checkFill()
      this.emit('removed')
    }
    return stored
  }

  async listInflight (): Promise<StoredPacket[]> {
    const list: StoredPacket[] = []
    for await (const value of this.db.values({ gte: INFLIGHT, lt: 'q"' })) list.push(JSON.parse(value) as StoredPacket)
    return list
  }

  async getMeta (name: string): Promise<string | undefined> {
    return await this.db.get(META + name)
  }

  async setMeta (name: string, value: string): Promise<void> {
    await this.db.put(META + name, value, { sync: true })
  }

  async close (): Promise<void> {
    await this.chain
    await this.db.close()
  }

  /** Drops dedupe keys older than `dedupeDays`. */
  async pruneSeen (): Promise<number> {
    const cutoff = this.now() - this.options.dedupeDays * 86400_000
    const stale: string[] = []
    for await (const [key, value] of this.db.iterator({ gte: SEEN, lt: 'k"' })) {
      if (Number(value) < cutoff) stale.push(key)
    }
    if (stale.length > 0) await this.db.batch(stale.map(key => ({ type: 'del' as const, key })))
    return stale.length
  }

  /** Loud when filling: warnings at 50% and 80%, an error when full, a note when it recovers. */
  private checkFill (): void {
    const fill = this.count / this.options.maxEvents
    const level = THRESHOLDS.filter(t => fill >= t).length
    if (level > this.warned) {
      const log = level === THRESHOLDS.length ? this.options.logger.error.bind(this.options.logger) : this.options.logger.warn.bind(this.options.logger)
      log({ outboxDepth: this.count, maxEvents: this.options.maxEvents },
        level === THRESHOLDS.length ? 'outbox full: the source is paused until the broker takes events' : `outbox ${Math.round(fill * 100)}% full: the broker is not taking events fast enough`)
      this.warned = level
    } else if (level === 0 && this.warned > 0) {
      this.options.logger.info({ outboxDepth: this.count }, 'outbox back under half full')
      this.warned = 0
    }
  }
}
