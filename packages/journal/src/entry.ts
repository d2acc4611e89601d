/** One accepted publish, as the journal keeps it. */
export interface JournalEntry {
  /** strictly increasing, never reused; the first entry ever is 1 */
  offset: number
  /** ms since the epoch, broker clock, never below the previous entry's */
  timestamp: number
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  /** the publishing user, for audit (never shown to anonymous readers); none for the broker's own */
  user?: string
  /** the payload is JSON text (checked once, when it was appended: readers need not parse it) */
  json?: boolean
}

/** What the broker appends; the journal gives it its offset and timestamp. */
export type NewEntry = Omit<JournalEntry, 'offset' | 'timestamp'>

const FLAG_RETAIN = 4
const FLAG_USER = 8
const FLAG_JSON = 16

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** Bytes that may open JSON text after its leading whitespace: `{ [ " -`, digits, and `t f n` (true, false, null). */
const JSON_OPENERS = new Uint8Array(256)
for (const c of '{["-0123456789tfn') JSON_OPENERS[c.charCodeAt(0)] = 1

/**
 * Whether bytes are UTF-8 JSON text (any JSON value). Runs once per journaled publish: a payload
 * that cannot open JSON text is told apart by its first byte after whitespace, without the
 * decode and the parser's thrown error (which cost a firehose of binary or plain-text payloads
 * some 4% of the broker's time).
 */
export function isJsonText (bytes: Uint8Array): boolean {
  let i = 0
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x09 || bytes[i] === 0x0a || bytes[i] === 0x0d)) i++
  if (i === bytes.length || JSON_OPENERS[bytes[i]!] === 0) return false
  try {
    JSON.parse(utf8.decode(bytes))
    return true
  } catch {
    return false
  }
}

/**
 * One entry's stored bytes (the offset is its key): timestamp (6 bytes, ms), flags (QoS in
 * bits 0-1, retain, has user, JSON payload), topic length (2) and topic, [user length (2) and
 * user], payload.
 */
export function encodeEntry (entry: Omit<JournalEntry, 'offset'>): Buffer {
  const topic = Buffer.from(entry.topic, 'utf8')
  const user = entry.user === undefined ? undefined : Buffer.from(entry.user, 'utf8')
  const size = 9 + topic.length + (user === undefined ? 0 : 2 + user.length) + entry.payload.length
  const out = Buffer.allocUnsafe(size)
  out.writeUIntBE(entry.timestamp, 0, 6)
  out[6] = entry.qos | (entry.retain ? FLAG_RETAIN : 0) | (user === undefined ? 0 : FLAG_USER) | (entry.json === true ? FLAG_JSON : 0)
  out.writeUInt16BE(topic.length, 7)
  let at = 9 + topic.copy(out, 9)
  if (user !== undefined) {
    out.writeUInt16BE(user.length, at)
    at += 2 + user.copy(out, at + 2)
  }
  entry.payload.copy(out, at)
  return out
}

/** The timestamp of an entry's stored bytes, without decoding the rest (retention looks at nothing else). */
export function storedTimestamp (bytes: Buffer): number {
  return bytes.readUIntBE(0, 6)
}

export function decodeEntry (offset: number, bytes: Buffer, knownTopic?: string): JournalEntry {
  const timestamp = storedTimestamp(bytes)
  const flags = bytes[6]!
  const topicLength = bytes.readUInt16BE(7)
  let at = 9 + topicLength
  const topic = knownTopic ?? bytes.toString('utf8', 9, at)
  let user: string | undefined
  if ((flags & FLAG_USER) !== 0) {
    const userLength = bytes.readUInt16BE(at)
    user = bytes.toString('utf8', at + 2, at + 2 + userLength)
    at += 2 + userLength
  }
  const entry: JournalEntry = { offset, timestamp, topic, payload: bytes.subarray(at), qos: (flags & 3) as 0 | 1 | 2, retain: (flags & FLAG_RETAIN) !== 0 }
  if (user !== undefined) entry.user = user
  if ((flags & FLAG_JSON) !== 0) entry.json = true
  return entry
}

/**
 * Decodes a page of stored entries. Consecutive entries on one topic (the usual run of a
 * replay) share one string for it, compared as bytes rather than decoded each time.
 */
export function decodeEntries<T> (items: readonly T[], offsetOf: (item: T) => number, bytesOf: (item: T) => Buffer): JournalEntry[] {
  const entries: JournalEntry[] = new Array(items.length)
  let previous: Buffer | undefined
  let previousTopic: string | undefined
  for (let i = 0; i < items.length; i++) {
    const bytes = bytesOf(items[i]!)
    const end = 9 + bytes.readUInt16BE(7)
    const same = previous !== undefined && previous.readUInt16BE(7) === end - 9 && bytes.compare(previous, 9, end, 9, end) === 0
    const entry = decodeEntry(offsetOf(items[i]!), bytes, same ? previousTopic : undefined)
    entries[i] = entry
    previous = bytes
    previousTopic = entry.topic
  }
  return entries
}
