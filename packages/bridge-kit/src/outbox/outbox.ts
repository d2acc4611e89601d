import { EventEmitter } from 'node:events'
import type { IStore } from 'mqtt'
import type { Logger } from 'pino'
import { openLevelStore } from '@firehose/runtime'
import { DedupeKeys } from './dedupe-keys.js'
import { EventQueue, type OutboxEntry, type OutboxEvent } from './event-queue.js'
import { InflightStore } from './inflight-store.js'
import type { BatchOp, Db } from './keyspace.js'
import { Metadata } from './metadata.js'

export type AcceptResult = 'queued' | 'duplicate'

export interface OutboxOptions {
  dir: string
  maxEvents: number
  dedupeDays: number
  logger: Logger
  /** the configuration's source, for errors opening `dir` */
  source: string
  /** called after each acknowledgement (an event left the outbox) */
  onAcknowledged?: () => void
  now?: () => number
}

const THRESHOLDS = [0.5, 0.8, 1] as const
/** metadata: when the last event was accepted (ms), so a restarted bridge's status still says */
const LAST_ACCEPTED = 'outbox.lastAcceptedAt'

/**
 * The bridge's durable queue, in LevelDB. Data flows one way: the source accepts an event
 * (written and synced with its dedupe key), the publisher takes the oldest with `next()` and
 * publishes it at QoS 2 through mqtt.js, whose in-flight packets live in `mqttStore` on the
 * same disk; the broker's PUBCOMP comes back through that store as the one acknowledgement,
 * which deletes the packet and the event in one write. So neither a broker outage nor a
 * bridge crash loses an event, and none is published twice. Bounded: when full, `accept`
 * waits — the source stops reading — and the log says so loudly.
 *
 * Four jobs, each in its own keyspace of the one LevelDB: the event queue, the dedupe keys
 * (kept `dedupeDays`), mqtt.js's in-flight packets, and the source's metadata.
 */
export class Outbox {
  readonly #db: Db
  readonly #options: OutboxOptions
  readonly #now: () => number
  readonly #events: EventQueue
  readonly #seen: DedupeKeys
  readonly #inflight: InflightStore
  /** mqtt.js's outgoing store (`outgoingStore`), on this outbox's disk */
  readonly mqttStore: IStore
  /** the source's own small values, kept with its events */
  readonly meta: Metadata
  /** 'added' and 'acknowledged', for whoever waits inside this class */
  readonly #changes = new EventEmitter()
  #count = 0
  #nextSeq = 1
  #sending: number | undefined
  #lastAcceptedAt: number | undefined
  #chain: Promise<unknown> = Promise.resolve()
  #warned = 0

  private constructor (db: Db, options: OutboxOptions) {
    this.#db = db
    this.#options = options
    this.#now = options.now ?? Date.now
    this.#events = new EventQueue(db)
    this.#seen = new DedupeKeys(db)
    this.meta = new Metadata(db)
    this.#inflight = new InflightStore(db, {
      takeSending: () => {
        const seq = this.#sending
        this.#sending = undefined
        return seq
      },
      acknowledge: async (ops, seq) => { await this.#acknowledge(ops, seq) }
    })
    this.mqttStore = this.#inflight
    this.#changes.setMaxListeners(0)
  }

  static async open (options: OutboxOptions): Promise<Outbox> {
    const db = await openLevelStore<string>(options.dir, 'utf8', { key: 'outbox.dir', user: 'bridge', source: options.source })
    const outbox = new Outbox(db, options)
    const { count, nextSeq } = await outbox.#events.scan()
    outbox.#count = count
    outbox.#nextSeq = nextSeq
    await outbox.#inflight.load()
    const last = await outbox.meta.get(LAST_ACCEPTED)
    outbox.#lastAcceptedAt = last === undefined ? undefined : Number(last)
    await outbox.#seen.forgetBefore(outbox.#now() - options.dedupeDays * 86400_000)
    if (count > 0) options.logger.info({ outboxDepth: count }, 'outbox holds events from before the restart: they are sent first, in order')
    return outbox
  }

  get depth (): number { return this.#count }
  /** when the last event was accepted (ms since the epoch), across restarts; undefined before the first */
  get lastAcceptedAt (): number | undefined { return this.#lastAcceptedAt }

  /** Writes the event (and its dedupe key) to disk; waits while the outbox is full. */
  async accept (event: OutboxEvent, dedupeKey?: string): Promise<AcceptResult> {
    const run = this.#chain.then(async () => {
      if (dedupeKey !== undefined && await this.#seen.has(dedupeKey)) return 'duplicate' as const
      while (this.#count >= this.#options.maxEvents) await this.#next('acknowledged')
      const entry: OutboxEntry = { ...event, seq: this.#nextSeq++, acceptedAt: this.#now() }
      const ops = [this.#events.appendOp(entry), this.meta.setOp(LAST_ACCEPTED, String(entry.acceptedAt))]
      if (dedupeKey !== undefined) ops.push(this.#seen.rememberOp(dedupeKey, entry.acceptedAt))
      await this.#db.batch(ops, { sync: true })
      this.#lastAcceptedAt = entry.acceptedAt
      this.#count++
      this.#checkFill()
      this.#changes.emit('added')
      return 'queued' as const
    })
    this.#chain = run.catch(() => {})
    return await run
  }

  async hasSeen (key: string): Promise<boolean> {
    return await this.#seen.has(key)
  }

  /**
   * The oldest event, for the publisher, which publishes it next: mqtt.js stores that
   * PUBLISH in `mqttStore` with the event's sequence number. Waits for an event to arrive;
   * undefined once `signal` aborts. One at a time: call again after its acknowledgement.
   */
  async next (signal: AbortSignal): Promise<OutboxEntry | undefined> {
    while (!signal.aborted) {
      const entry = await this.#events.first()
      if (entry !== undefined) {
        this.#sending = entry.seq
        return entry
      }
      await this.#next('added', signal)
    }
    return undefined
  }

  /** Whether an event's QoS 2 handshake is still open: mqtt.js re-sends it after reconnecting. */
  get resending (): boolean {
    return this.#inflight.carrying
  }

  /** Resolves at the next acknowledgement, or once `signal` aborts. */
  async acknowledgement (signal: AbortSignal): Promise<void> {
    await this.#next('acknowledged', signal)
  }

  /** Resolves once every event accepted so far has left the outbox (the broker acknowledged it). */
  async flushed (): Promise<void> {
    await this.#chain
    const through = this.#nextSeq - 1
    for (;;) {
      const first = await this.#events.first()
      if (first === undefined || first.seq > through) return
      await this.#next('acknowledged')
    }
  }

  async close (): Promise<void> {
    await this.#chain
    await this.#db.close()
  }

  /** PUBCOMP, from the in-flight store: the packet and the event it carried leave the disk in one write. */
  async #acknowledge (ops: BatchOp[], seq: number | undefined): Promise<void> {
    if (seq !== undefined) ops.push(this.#events.deleteOp(seq))
    await this.#db.batch(ops, { sync: true })
    if (seq === undefined) return
    this.#count--
    this.#checkFill()
    this.#changes.emit('acknowledged')
    this.#options.onAcknowledged?.()
  }

  async #next (change: 'added' | 'acknowledged', signal?: AbortSignal): Promise<void> {
    if (signal?.aborted === true) return
    await new Promise<void>(resolve => {
      const done = (): void => {
        this.#changes.off(change, done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      this.#changes.once(change, done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  /** Loud when filling: warnings at 50% and 80%, an error when full, a note when it recovers. */
  #checkFill (): void {
    const { logger, maxEvents } = this.#options
    const fill = this.#count / maxEvents
    const level = THRESHOLDS.filter(t => fill >= t).length
    if (level > this.#warned) {
      const full = level === THRESHOLDS.length
      const fields = { event: full ? 'outbox.full' : 'outbox.filling', outboxDepth: this.#count, maxEvents }
      if (full) logger.error(fields, 'outbox full: the source is paused until the broker takes events')
      else logger.warn(fields, `outbox ${Math.round(fill * 100)}% full: the broker is not taking events fast enough`)
      this.#warned = level
    } else if (level === 0 && this.#warned > 0) {
      logger.info({ event: 'outbox.recovered', outboxDepth: this.#count }, 'outbox back under half full')
      this.#warned = 0
    }
  }
}
