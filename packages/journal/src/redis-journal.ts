import type { Redis } from 'ioredis'
import { decodeEntries, encodeEntry, type JournalEntry, type NewEntry } from './entry.js'
import { Announcer, digestOf, firstOffsetAt, type InFlight, type Journal, type JournalBounds, type Retention } from './journal.js'

/**
 * KEYS: the stream, the meta hash, then for each entry the hash of its publisher's in-flight
 * packet ids (the meta hash when it has none). ARGV: per entry, its encoded bytes (the first 6,
 * the timestamp, left for the script to fill), its packet id field ('' for none) and the digest
 * of its topic and payload. Each new entry gets the next offset (`last` in the meta hash) as its
 * stream id `<offset>-0` and a timestamp from Redis' own clock, never below the previous one:
 * one clock and one counter for every node. An entry whose packet id is held with the same
 * digest is a retransmission: not appended, its first offset returned (timestamp -1).
 * Returns offset, timestamp pairs.
 */
const APPEND = `local now = redis.call('time')
local ts = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local last_ts = tonumber(redis.call('hget', KEYS[2], 'lastTimestamp') or '0')
if ts < last_ts then ts = last_ts end
local stamp = ''
local t = ts
for _ = 1, 6 do
  stamp = string.char(t % 256) .. stamp
  t = math.floor(t / 256)
end
local out = {}
local bytes = 0
for i = 1, #ARGV / 3 do
  local field = ARGV[3 * i - 1]
  local digest = ARGV[3 * i]
  local held = false
  if field ~= '' then held = redis.call('hget', KEYS[2 + i], field) end
  local space = held and string.find(held, ' ', 1, true)
  if space and string.sub(held, space + 1) == digest then
    out[#out + 1] = tonumber(string.sub(held, 1, space - 1))
    out[#out + 1] = -1
  else
    local offset = redis.call('hincrby', KEYS[2], 'last', 1)
    local value = stamp .. string.sub(ARGV[3 * i - 2], 7)
    redis.call('xadd', KEYS[1], offset .. '-0', 'e', value)
    if field ~= '' then redis.call('hset', KEYS[2 + i], field, offset .. ' ' .. digest) end
    bytes = bytes + #value
    out[#out + 1] = offset
    out[#out + 1] = ts
  end
end
redis.call('hset', KEYS[2], 'lastTimestamp', ts)
redis.call('hincrby', KEYS[2], 'bytes', bytes)
return out`

/**
 * KEYS: the stream, the meta hash. ARGV: maxAge (ms), maxBytes, how many to look at. Deletes the
 * oldest entries past either limit, up to that many, and the bytes they held, in one step
 * however many nodes run it; ages by Redis' clock, the one the timestamps come from. Returns the
 * number deleted.
 */
const TRIM = `local bytes = tonumber(redis.call('hget', KEYS[2], 'bytes') or '0')
local now = redis.call('time')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local function stamp (value)
  local ts = 0
  for i = 1, 6 do ts = ts * 256 + string.byte(value, i) end
  return ts
end
-- the usual case, every second: nothing is due unless the oldest entry is
local first = redis.call('xrange', KEYS[1], '-', '+', 'COUNT', 1)
if #first == 0 or (bytes <= max and stamp(first[1][2][2]) >= oldest) then return 0 end
local entries = redis.call('xrange', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[3]))
local freed = 0
local n = 0
for _, entry in ipairs(entries) do
  local value = entry[2][2]
  if stamp(value) >= oldest and bytes - freed <= max then break end
  freed = freed + #value
  n = n + 1
end
if n == 0 then return 0 end
-- ids are <offset>-0: everything below the next offset goes in one command
local last = entries[n][1]
redis.call('xtrim', KEYS[1], 'MINID', (tonumber(string.sub(last, 1, string.find(last, '-', 1, true) - 1)) + 1) .. '-0')
redis.call('hincrby', KEYS[2], 'bytes', -freed)
return n`

export interface RedisJournalOptions {
  /** commands: appends, reads, retention */
  db: Redis
  /** a connection of its own for the blocking read that follows every node's appends */
  tail: Redis
  retention: Retention
  /** key prefix (default `firehose:journal`) */
  key?: string
  /** ms between retention passes */
  retentionInterval?: number
  onError?: (err: Error) => void
}

interface Waiting {
  input: NewEntry
  bytes: Buffer
  inFlight: InFlight | undefined
  resolve: (entry: JournalEntry) => void
  reject: (err: Error) => void
}

const TRIM_CHUNK = 1000
const TAIL_COUNT = 1000
const idOf = (offset: number): string => `${offset}-0`
const offsetOf = (id: string): number => Number(id.slice(0, id.indexOf('-')))
/** Stream entries as XRANGE and XREAD return them: `[id, ['e', value]]`. */
const entriesOf = (found: Array<[Buffer, Buffer[]]>): JournalEntry[] => decodeEntries(found, ([id]) => offsetOf(id.toString()), ([, fields]) => fields[1]!)

/**
 * The journal of a cluster, on Redis Streams: every node appends to and reads the same stream,
 * so offsets and history are the same everywhere. Stream ids are offsets (`<offset>-0`), given
 * by a counter in Redis; timestamps come from Redis' clock. Each node follows the stream with a
 * blocking XREAD, so a reader on any node sees every node's appends, in offset order.
 */
export class RedisJournal implements Journal {
  readonly #db: Redis
  readonly #tail: Redis
  readonly #stream: string
  readonly #meta: string
  readonly #retention: Retention
  readonly #onError: (err: Error) => void
  readonly #announcer = new Announcer()
  #waiting: Waiting[] = []
  /** the group commit under way, if any */
  #writing: Promise<void> | undefined
  #first = 1
  #last = 0
  #bytes = 0
  #appends = 0
  /** the newest offset the tail has announced */
  #tailed = 0
  #closed = false
  #timer: NodeJS.Timeout | undefined
  #tailing: Promise<void> | undefined

  private constructor (options: RedisJournalOptions) {
    this.#db = options.db
    this.#tail = options.tail
    this.#stream = options.key ?? 'firehose:journal'
    this.#meta = `${this.#stream}:meta`
    this.#retention = options.retention
    this.#onError = options.onError ?? (() => {})
    // the number of keys varies with the batch: given with each call
    this.#db.defineCommand('firehoseJournalAppend', { lua: APPEND })
    this.#db.defineCommand('firehoseJournalTrim', { numberOfKeys: 2, lua: TRIM })
    this.#timer = setInterval(() => { this.#refresh().catch(this.#onError) }, options.retentionInterval ?? 1000)
    this.#timer.unref()
  }

  static async open (options: RedisJournalOptions): Promise<RedisJournal> {
    const journal = new RedisJournal(options)
    await journal.#refresh()
    journal.#tailed = journal.#last
    journal.#tailing = journal.#follow()
    return journal
  }

  /** Bounds from Redis, then a retention pass. */
  async #refresh (): Promise<void> {
    if (this.#closed) return
    await this.#trim()
    const [meta, oldest] = await Promise.all([
      this.#db.hmget(this.#meta, 'last', 'bytes'),
      this.#db.xrange(this.#stream, '-', '+', 'COUNT', 1)
    ])
    this.#last = Math.max(this.#last, Number(meta[0] ?? 0))
    this.#bytes = Number(meta[1] ?? 0)
    this.#first = oldest.length === 0 ? this.#last + 1 : offsetOf(oldest[0]![0])
  }

  async #trim (): Promise<void> {
    for (;;) {
      const deleted = await (this.#db as unknown as { firehoseJournalTrim: (...args: Array<string | number>) => Promise<number> })
        .firehoseJournalTrim(this.#stream, this.#meta, this.#retention.maxAgeMs, this.#retention.maxBytes, TRIM_CHUNK)
      if (deleted < TRIM_CHUNK || this.#closed) return
    }
  }

  async append (input: NewEntry, inFlight?: InFlight): Promise<JournalEntry> {
    if (this.#closed) throw new Error('the journal is closed')
    const bytes = encodeEntry({ ...input, timestamp: 0 })
    return await new Promise((resolve, reject) => {
      this.#waiting.push({ input, bytes, inFlight, resolve, reject })
      this.#writing ??= this.#writeAll().catch((err: Error) => { this.#writing = undefined; this.#onError(err) })
    })
  }

  /** Group commit: one script per batch of what waited while the previous one ran. */
  async #writeAll (): Promise<void> {
    while (this.#waiting.length > 0) {
      const batch = this.#waiting
      this.#waiting = []
      let assigned: number[]
      try {
        const keys = batch.map(w => w.inFlight === undefined ? this.#meta : this.#pendingKey(w.inFlight.client))
        const args = batch.flatMap(w => w.inFlight === undefined ? [w.bytes, '', ''] : [w.bytes, String(w.inFlight.packetId), digestOf(w.input)])
        assigned = (await (this.#db as unknown as { firehoseJournalAppend: (...args: Array<string | Buffer | number>) => Promise<number[]> })
          .firehoseJournalAppend(2 + batch.length, this.#stream, this.#meta, ...keys, ...args)).map(Number)
      } catch (err) {
        for (const w of batch) w.reject(err as Error)
        continue
      }
      batch.forEach((w, i) => {
        const entry: JournalEntry = { ...w.input, offset: assigned[2 * i]!, timestamp: assigned[2 * i + 1]! }
        if (entry.timestamp < 0) {
          w.resolve({ ...entry, timestamp: 0 }) // a retransmission, journaled before
          return
        }
        this.#last = Math.max(this.#last, entry.offset)
        this.#bytes += w.bytes.length
        this.#appends++
        w.resolve(entry)
      })
    }
    // at once, not in a later callback: an append made after this must start the next writer
    this.#writing = undefined
  }

  /** Follows the stream from the last offset known at start: every node's appends, in order. */
  async #follow (): Promise<void> {
    let failures = 0
    while (!this.#closed) {
      try {
        const reply = await this.#tail.xreadBuffer('COUNT', TAIL_COUNT, 'BLOCK', 1000, 'STREAMS', this.#stream, idOf(this.#tailed))
        failures = 0
        const found = reply?.[0]?.[1] ?? []
        if (found.length === 0) continue
        const entries = entriesOf(found)
        this.#tailed = entries[entries.length - 1]!.offset
        this.#last = Math.max(this.#last, this.#tailed)
        this.#announcer.announce(entries)
      } catch (err) {
        if (this.#closed) return
        if (failures++ === 0) this.#onError(err as Error)
        await new Promise(resolve => setTimeout(resolve, Math.min(2000, 100 * 2 ** failures)))
      }
    }
  }

  #pendingKey (client: string): string {
    return `${this.#stream}:pending:${encodeURIComponent(client)}`
  }

  async release (client: string, packetId?: number): Promise<void> {
    if (packetId === undefined) await this.#db.del(this.#pendingKey(client))
    else await this.#db.hdel(this.#pendingKey(client), String(packetId))
  }

  async read (from: number, limit: number): Promise<JournalEntry[]> {
    if (limit <= 0) return []
    return entriesOf(await this.#db.xrangeBuffer(this.#stream, idOf(Math.max(from, 1)), '+', 'COUNT', limit))
  }

  async offsetAt (timestamp: number): Promise<number> {
    return await firstOffsetAt(timestamp, this.#first, this.#last, async (from, limit) => await this.read(from, limit))
  }

  bounds (): JournalBounds {
    return { first: this.#first, last: this.#last, bytes: this.#bytes, appends: this.#appends }
  }

  /** Announced by the tail, so readers on this node see the appends of every node. */
  onAppended (listener: (entries: readonly JournalEntry[]) => void): () => void {
    return this.#announcer.add(listener)
  }

  async close (): Promise<void> {
    if (this.#closed) return
    while (this.#writing !== undefined) await this.#writing
    this.#closed = true
    clearInterval(this.#timer)
    this.#tail.disconnect()
    await this.#tailing
  }
}
