import type { JournalEntry } from '@firehose/journal'

/** What a reader gets for one entry: the payload as JSON when it parses, else text, else base64. */
export interface Envelope {
  offset: number
  timestamp: number
  topic: string
  payload?: unknown
  /** instead of payload, when the bytes are not UTF-8 text */
  payloadBase64?: string
  /** the publishing user: on the history page, for authenticated readers */
  user?: string
}

const decoder = new TextDecoder('utf-8', { fatal: true })

/** The payload as a reader sees it: `{ payload }` (JSON or text) or `{ payloadBase64 }`. */
export function readablePayload (bytes: Buffer): { payload: unknown } | { payloadBase64: string } {
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return { payloadBase64: bytes.toString('base64') }
  }
  try {
    return { payload: JSON.parse(text) as unknown }
  } catch {
    return { payload: text }
  }
}

export function envelopeOf (entry: JournalEntry, withUser = false): Envelope {
  return {
    offset: entry.offset,
    timestamp: entry.timestamp,
    topic: entry.topic,
    ...readablePayload(entry.payload),
    ...(withUser && entry.user !== undefined ? { user: entry.user } : {})
  }
}

/** An envelope's JSON text up to its payload: `{"offset":...,"timestamp":...,"topic":"...",` */
const envelopeHead = (entry: JournalEntry, topicJson = JSON.stringify(entry.topic)): string => `{"offset":${entry.offset},"timestamp":${entry.timestamp},"topic":${topicJson},`

/**
 * An envelope's JSON text, written directly: a payload that is JSON (as found when it was
 * journaled) goes in as its own text, not parsed and serialised again, with its line breaks —
 * whitespace, in valid JSON — made spaces so that it fits on one SSE `data:` line.
 */
export function envelopeJson (entry: JournalEntry): string {
  const head = envelopeHead(entry)
  if (entry.json === true) {
    const text = entry.payload.toString('utf8')
    return `${head}"payload":${/[\r\n]/.test(text) ? text.replace(/[\r\n]/g, ' ') : text}}`
  }
  let text: string
  try {
    text = decoder.decode(entry.payload)
  } catch {
    return `${head}"payloadBase64":"${entry.payload.toString('base64')}"}`
  }
  return `${head}"payload":${JSON.stringify(text)}}`
}

/**
 * An envelope as JSON for a body that is not an SSE line (a pull's answer): a JSON payload, line
 * breaks and all, is `payload` — its own bytes, to write between `head` and `}` — never decoded
 * or searched; anything else is all `head`.
 */
export function envelopeParts (entry: JournalEntry): { head: string, payload?: Buffer } {
  if (entry.json === true) return { head: `${envelopeHead(entry)}"payload":`, payload: entry.payload }
  return { head: envelopeJson(entry) }
}

/** What closes a frame whose JSON payload went in as its own bytes. */
export const FRAME_TAIL = '}\n\n'
const FRAME_TAIL_BYTES = Buffer.from(FRAME_TAIL)
const hasLineBreak = (bytes: Buffer): boolean => bytes.includes(0x0a) || bytes.includes(0x0d)

/**
 * One entry's SSE frame (`id:`, `event: message`, `data:` and the envelope): all of it as text
 * in `head`, except a JSON payload without line breaks, which is `payload` — its own bytes, never
 * decoded or encoded again — to write between `head` and FRAME_TAIL. `topicJson`: the topic's
 * JSON text, when the caller has it already.
 */
export function sseFrame (entry: JournalEntry, topicJson?: string): { head: string, payload?: Buffer } {
  const id = `id: ${entry.offset}\nevent: message\ndata: `
  if (entry.json === true && !hasLineBreak(entry.payload)) return { head: `${id}${envelopeHead(entry, topicJson)}"payload":`, payload: entry.payload }
  return { head: `${id}${envelopeJson(entry)}\n\n` }
}

/** One entry's SSE frame as byte parts. */
export function sseFrameParts (entry: JournalEntry): Buffer[] {
  const { head, payload } = sseFrame(entry)
  return payload === undefined ? [Buffer.from(head)] : [Buffer.from(head), payload, FRAME_TAIL_BYTES]
}

/** One SSE frame per live entry object, shared by every live reader of it (history is framed by each reader's SseOutput). */
export class FrameCache {
  readonly #cache = new WeakMap<JournalEntry, Buffer[]>()

  parts (entry: JournalEntry): Buffer[] {
    let parts = this.#cache.get(entry)
    if (parts === undefined) this.#cache.set(entry, parts = sseFrameParts(entry))
    return parts
  }
}
