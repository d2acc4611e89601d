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

/** One serialised envelope per entry object, shared by every live reader of it. */
export class EnvelopeCache {
  readonly #cache = new WeakMap<JournalEntry, string>()

  json (entry: JournalEntry): string {
    let text = this.#cache.get(entry)
    if (text === undefined) this.#cache.set(entry, text = JSON.stringify(envelopeOf(entry)))
    return text
  }
}
