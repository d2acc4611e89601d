import { ClassicLevel } from 'classic-level'
import { openLevelStore } from '@firehose/runtime'
import { decodeEntries, decodeEntry, encodeEntry, storedTimestamp, type JournalEntry, type NewEntry } from './entry.js'
import { ReadCursors, type EntryIterator } from './read-cursors.js'
import { Announcer, digestOf, firstOffsetAt, type InFlight, type Journal, type JournalBounds, type Retention } from './journal.js'

const ENTRY = 'e'
const ENTRIES_END = 'f'
const LAST = 'm:last'
const BYTES = 'm:bytes'
/** in-flight QoS 2 packet ids: `p:<client>\0<packet id>` -> `<offset> <digest of topic and payload>` */
const PENDING = 'p:'
const PENDING_END = 'p;'
const pendingKey = (inFlight: InFlight): string => `${inFlight.client}\u0000${inFlight.packetId}`
const keyOf = (offset: number): string => ENTRY + String(offset).padStart(16, '0')
const offsetOf = (key: string): number => Number(key.slice(1))
const number = (value: Buffer | undefined): number => value === undefined ? 0 : Number(value.toString())

interface Waiting {
  entry: JournalEntry
  bytes: Buffer
  /** its in-flight key and digest */
  pending: [string, string] | undefined
  resolve: (entry: JournalEntry) => void
  reject: (err: Error) => void
}

export interface LevelJournalOptions {
  retention: Retention
  /** ms since the epoch */
  now?: () => number
  /** ms between retention passes (also run after a write that passes maxBytes) */
  retentionInterval?: number
  /** where to say that a retention pass failed */
  onError?: (err: Error) => void
  /** names the configuration key in messages about the directory */
  key?: string
  source?: string
}

/**
 * Bytes LevelDB reads per trip to its thread (a trip also stops at the page's end). classic-level's
 * default, 16 KiB, left a replay waiting on the event loop between trips; from about 320 KiB a
 * trip, the threads' malloc arenas kept some 130 MiB after a large replay (measured: 25 MiB at
 * 128 KiB, for the same speed within this machine's noise).
 */
const READ_AHEAD_BYTES = 128 * 1024

/** Entries deleted per retention batch: bounds one pass's memory and write size. */
const TRIM_CHUNK = 5000

/**
 * The embedded journal: one LevelDB of its own, an entry per key (`e` and the offset,
 * zero-padded, so key order is offset order), with the last offset given and the bytes held
 * as two meta keys written in the same batch as the entries. LevelDB rather than segment files:
 * the project already runs it (sessions, outboxes), a batch is atomic, ranges are ordered
 * scans, and retention is a range delete; bench/ compares a replay with a bare iteration of
 * the same store.
 */
export class LevelJournal implements Journal {
  readonly #db: ClassicLevel<string, Buffer>
  readonly #retention: Retention
  readonly #now: () => number
  readonly #onError: (err: Error) => void
  readonly #announcer = new Announcer()
  #first: number
  #last: number
  #lastTimestamp: number
  #bytes: number
  #appends = 0
  #waiting: Waiting[] = []
  /** in-flight QoS 2 packets journaled and not yet released; also on disk, read back at open */
  readonly #pending: Map<string, { offset: number, digest: string }>
  /** releases to write with the next batch */
  #released: string[] = []
  /** writes and retention batches, one after another (each keeps the bytes meta key exact) */
  #lane: Promise<void> = Promise.resolve()
  #writeQueued = false
  #trimQueued = false
  #timer: NodeJS.Timeout | undefined
  #closed = false
  /** where sequential readers' pages left off */
  readonly #cursors = new ReadCursors()

  private constructor (db: ClassicLevel<string, Buffer>, state: { first: number, last: number, lastTimestamp: number, bytes: number, pending: Map<string, { offset: number, digest: string }> }, options: LevelJournalOptions) {
    this.#db = db
    this.#pending = state.pending
    this.#retention = options.retention
    this.#now = options.now ?? Date.now
    this.#onError = options.onError ?? (() => {})
    this.#first = state.first
    this.#last = state.last
    this.#lastTimestamp = state.lastTimestamp
    this.#bytes = state.bytes
    this.#timer = setInterval(() => {
      this.#trim()
      this.#cursors.sweep(this.#first)
    }, options.retentionInterval ?? 1000)
    this.#timer.unref()
  }

  static async open (dir: string, options: LevelJournalOptions): Promise<LevelJournal> {
    // an append-only log: a larger write buffer means fewer, larger flushes to disk
    const db = await openLevelStore<Buffer>(dir, 'buffer', { key: options.key ?? 'journal.dir', user: 'broker', source: options.source ?? 'journal', tuning: { writeBufferSize: 16 * 1024 * 1024 } })
    const [newest] = await db.keys({ gte: ENTRY, lt: ENTRIES_END, reverse: true, limit: 1 }).all()
    const [oldest] = await db.keys({ gte: ENTRY, lt: ENTRIES_END, limit: 1 }).all()
    const meta = await db.getMany([LAST, BYTES])
    // the meta key keeps offsets from being reused once retention has emptied the journal
    const last = Math.max(number(meta[0]), newest === undefined ? 0 : offsetOf(newest))
    const lastTimestamp = newest === undefined ? 0 : decodeEntry(last, (await db.get(newest))!).timestamp
    const pending = new Map<string, { offset: number, digest: string }>()
    for (const [key, value] of await db.iterator({ gte: PENDING, lt: PENDING_END }).all()) {
      const [offset, digest] = value.toString().split(' ')
      pending.set(key.slice(PENDING.length), { offset: Number(offset), digest: digest ?? '' })
    }
    const journal = new LevelJournal(db, { first: oldest === undefined ? last + 1 : offsetOf(oldest), last, lastTimestamp, bytes: number(meta[1]), pending }, options)
    journal.#trim()
    return journal
  }

  async append (input: NewEntry, inFlight?: InFlight): Promise<JournalEntry> {
    if (this.#closed) throw new Error('the journal is closed')
    const pending = inFlight === undefined ? undefined : pendingKey(inFlight)
    const digest = pending === undefined ? '' : digestOf(input)
    const journaled = pending === undefined ? undefined : this.#pending.get(pending)
    // the same packet id with another message is a new message (a release was missed), not a retransmission
    if (journaled !== undefined && journaled.digest === digest) return { ...input, offset: journaled.offset, timestamp: this.#lastTimestamp }
    // offset and timestamp now, in call order: the order of the appends is the journal's
    this.#lastTimestamp = Math.max(this.#lastTimestamp, this.#now())
    const entry: JournalEntry = { ...input, offset: ++this.#last, timestamp: this.#lastTimestamp }
    if (pending !== undefined) this.#pending.set(pending, { offset: entry.offset, digest })
    const bytes = encodeEntry(entry)
    return await new Promise((resolve, reject) => {
      this.#waiting.push({ entry, bytes, pending: pending === undefined ? undefined : [pending, digest], resolve, reject })
      this.#queueWrite()
    })
  }

  async release (client: string, packetId?: number): Promise<void> {
    const keys = packetId === undefined
      ? [...this.#pending.keys()].filter(key => key.startsWith(`${client}\u0000`))
      : [pendingKey({ client, packetId })].filter(key => this.#pending.has(key))
    if (keys.length === 0) return
    for (const key of keys) this.#pending.delete(key)
    this.#released.push(...keys)
    await new Promise<void>((resolve, reject) => {
      this.#queueWrite()
      this.#lane.then(resolve, reject)
    })
  }

  #queueWrite (): void {
    if (this.#writeQueued) return
    this.#writeQueued = true
    this.#lane = this.#lane.then(async () => { await this.#writeAll() })
  }

  /** Writes what is waiting, one batch at a time, until nothing is: the group commit. */
  async #writeAll (): Promise<void> {
    while (this.#waiting.length > 0 || this.#released.length > 0) {
      const batch = this.#waiting
      const released = this.#released
      this.#waiting = []
      this.#released = []
      let bytes = 0
      const ops: Array<{ type: 'put', key: string, value: Buffer } | { type: 'del', key: string }> = []
      for (const w of batch) {
        bytes += w.bytes.length
        ops.push({ type: 'put', key: keyOf(w.entry.offset), value: w.bytes })
        // with the entry, in one batch: after a crash, the entry and its packet id are both there or neither
        if (w.pending !== undefined) ops.push({ type: 'put', key: PENDING + w.pending[0], value: Buffer.from(`${w.entry.offset} ${w.pending[1]}`) })
      }
      for (const key of released) ops.push({ type: 'del', key: PENDING + key })
      if (batch.length > 0) {
        ops.push({ type: 'put', key: LAST, value: Buffer.from(String(batch[batch.length - 1]!.entry.offset)) })
        ops.push({ type: 'put', key: BYTES, value: Buffer.from(String(this.#bytes + bytes)) })
      }
      try {
        await this.#db.batch(ops)
      } catch (err) {
        for (const w of batch) {
          if (w.pending !== undefined && this.#pending.get(w.pending[0])?.offset === w.entry.offset) this.#pending.delete(w.pending[0])
          w.reject(err as Error)
        }
        // released ids left on disk are harmless: a new message under the id has another digest
        if (batch.length === 0) this.#onError(err as Error)
        continue
      }
      if (batch.length === 0) continue
      this.#bytes += bytes
      this.#appends += batch.length
      if (this.#first > batch[0]!.entry.offset) this.#first = batch[0]!.entry.offset
      for (const w of batch) w.resolve(w.entry)
      const entries = batch.map(w => w.entry)
      this.#announcer.announce(entries)
      if (this.#bytes > this.#retention.maxBytes) this.#trim()
    }
    this.#writeQueued = false
  }

  async read (from: number, limit: number): Promise<JournalEntry[]> {
    const start = Math.max(from, this.#first)
    if (limit <= 0 || start > this.#last) return []
    // a reader's next page goes on where its last one ended (ReadCursors), else a new iterator
    const open = (at: number): EntryIterator => this.#db.iterator({ gte: keyOf(at), lt: ENTRIES_END, highWaterMarkBytes: READ_AHEAD_BYTES })
    let iterator = this.#cursors.take(start)
    let fresh = iterator === undefined
    iterator ??= open(start)
    const found: Array<[string, Buffer]> = []
    let ended = false
    try {
      while (found.length < limit) {
        const trip = await iterator.nextv(limit - found.length)
        if (trip.length > 0) {
          for (const item of trip) found.push(item)
          continue
        }
        iterator.close().catch(() => {})
        const next = found.length === 0 ? start : offsetOf(found[found.length - 1]![0]) + 1
        // a kept iterator does not see what was appended after it was opened: go on with a new one
        if (!fresh && next <= this.#last) {
          iterator = open(next)
          fresh = true
          continue
        }
        ended = true
        break
      }
    } catch (err) {
      iterator.close().catch(() => {})
      throw err
    }
    if (!ended) {
      if (this.#closed || found.length === 0) iterator.close().catch(() => {})
      else this.#cursors.keep(offsetOf(found[found.length - 1]![0]) + 1, iterator)
    }
    return decodeEntries(found, ([key]) => offsetOf(key), ([, value]) => value)
  }

  async offsetAt (timestamp: number): Promise<number> {
    return await firstOffsetAt(timestamp, this.#first, this.#last, async (from, limit) => await this.read(from, limit))
  }

  bounds (): JournalBounds {
    return { first: this.#first, last: this.#last, bytes: this.#bytes, appends: this.#appends }
  }

  onAppended (listener: (entries: readonly JournalEntry[]) => void): () => void {
    return this.#announcer.add(listener)
  }

  /** Queues a retention batch in the lane, unless one is queued; appends wait for one batch at most. */
  #trim (): void {
    if (this.#trimQueued || this.#closed) return
    this.#trimQueued = true
    this.#lane = this.#lane.then(async () => {
      this.#trimQueued = false
      if (await this.#trimBatch()) this.#trim()
    }).catch((err: unknown) => { this.#onError(err as Error) })
  }

  /** Deletes up to TRIM_CHUNK entries past retention, oldest first; true when there may be more. */
  async #trimBatch (): Promise<boolean> {
    if (this.#closed) return false
    const oldestKept = this.#now() - this.#retention.maxAgeMs
    if (this.#bytes <= this.#retention.maxBytes) {
      // the usual case, every second: nothing is due unless the oldest entry is past its age
      const [oldest] = await this.#db.values({ gte: keyOf(this.#first), lt: ENTRIES_END, limit: 1 }).all()
      if (oldest === undefined || storedTimestamp(oldest) >= oldestKept) return false
    }
    const chunk = await this.#db.iterator({ gte: keyOf(this.#first), lt: ENTRIES_END, limit: TRIM_CHUNK }).all()
    let freed = 0
    const doomed: string[] = []
    for (const [key, value] of chunk) {
      const tooOld = storedTimestamp(value) < oldestKept
      const tooBig = this.#bytes - freed > this.#retention.maxBytes
      if (!tooOld && !tooBig) break
      doomed.push(key)
      freed += value.length
    }
    if (doomed.length === 0) return false
    await this.#db.batch([
      ...doomed.map(key => ({ type: 'del' as const, key })),
      { type: 'put', key: BYTES, value: Buffer.from(String(this.#bytes - freed)) }
    ])
    this.#bytes -= freed
    this.#first = offsetOf(doomed[doomed.length - 1]!) + 1
    return doomed.length === chunk.length
  }

  async close (): Promise<void> {
    if (this.#closed) return
    clearInterval(this.#timer)
    this.#closed = true
    // what was appended is written; a retention batch under way finishes
    while (this.#writeQueued || this.#waiting.length > 0 || this.#released.length > 0) await this.#lane
    await this.#lane
    await this.#cursors.closeAll()
    await this.#db.close()
  }
}
