import { createHash } from 'node:crypto'
import type { JournalEntry } from '@firehose/journal'
import type { Decision } from './rule-state.js'
import type { Endpoint, Rule } from './rule.js'

/** One event as a combined event lists it (EventSync's Event, and where it is in the journal). */
export interface OutputEvent {
  datetime: string
  eventKey: string
  headers: Record<string, string[]>
  queryParams: Record<string, string[]>
  content: string
  /** set when the payload was not UTF-8: `content` is then its base64 */
  contentEncoding?: 'base64'
  topic: string
  offset: number
}

/** What an HTTP event is journaled as (POST /v1/event-sync/<rule>/event/<eventKey>). */
export interface HttpEventBody {
  headers: Record<string, string[]>
  queryParams: Record<string, string[]>
  content: string
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
/** A journal timestamp as the combined event writes dates. */
export const iso = (ms: number): string => new Date(ms).toISOString()

function isHttpBody (value: unknown): value is HttpEventBody {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false
  const v = value as Record<string, unknown>
  return typeof v.content === 'string' && typeof v.headers === 'object' && v.headers !== null && typeof v.queryParams === 'object' && v.queryParams !== null && Object.keys(v).length === 3
}

/** An entry as the combined event lists it: an HTTP event's request, or an MQTT event's payload as its content. */
export function outputEvent (entry: JournalEntry, endpoint: Endpoint): OutputEvent {
  let text: string | undefined
  try {
    text = utf8.decode(entry.payload)
  } catch {}
  const base = { datetime: iso(entry.timestamp), eventKey: endpoint.eventKey }
  const where = { topic: entry.topic, offset: entry.offset }
  if (text !== undefined && endpoint.http && entry.json === true) {
    const body = JSON.parse(text) as unknown
    if (isHttpBody(body)) return { ...base, headers: body.headers, queryParams: body.queryParams, content: body.content, ...where }
  }
  return text === undefined
    ? { ...base, headers: {}, queryParams: {}, content: entry.payload.toString('base64'), contentEncoding: 'base64', ...where }
    : { ...base, headers: {}, queryParams: {}, content: text, ...where }
}

/** JSON with every object's keys sorted, no spaces: what eventID digests. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().map(k => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}

export interface BuiltOutput {
  payload: Buffer
  eventId: string
  /** events left out so that the message fits */
  leftOut: number
  /** events the journal no longer held (past its retention) */
  missing: number
}

/** Reads the entries at these offsets (in runs of consecutive ones); those past retention are absent. */
async function readEntries (offsets: readonly number[], read: (from: number, limit: number) => Promise<JournalEntry[]>): Promise<Map<number, JournalEntry>> {
  const found = new Map<number, JournalEntry>()
  const sorted = [...offsets].sort((a, b) => a - b)
  for (let i = 0; i < sorted.length;) {
    let j = i + 1
    while (j < sorted.length && sorted[j] === sorted[j - 1]! + 1 && j - i < 500) j++
    for (const entry of await read(sorted[i]!, j - i)) found.set(entry.offset, entry)
    i = j
  }
  return found
}

/** Events read and sized per trip, while the message has room. */
const READ_BATCH = 200

/**
 * The combined event of a decision, in EventSync's format field for field — `eventID`, `date`,
 * `serviceName`, `triggerType`, `events` (per event key: `FirstEventDate`, `lastEventDate`,
 * `numberOfEvents`, `events`) — and Firehose's own: `triggerOffset` (the journal offset of the
 * event that completed the window, or of the trigger), each event's `topic` and `offset`, and
 * `truncated` when events had to be left out to fit `maxBytes` (the counts and dates stay whole;
 * the events left out are in the journal). Events go in oldest first, one endpoint after the
 * other in turn, so that every endpoint is represented when not all fit.
 *
 * `eventID` is the MD5 (hex) of the canonical JSON (keys sorted, no spaces) of `events`: two
 * syncs of the same events have the same id.
 */
export async function buildOutput (rule: Rule, decision: Decision, read: (from: number, limit: number) => Promise<JournalEntry[]>, maxBytes: number): Promise<BuiltOutput> {
  // each event included as its JSON text as published, and as its canonical text (for the id)
  const lists = decision.endpoints.map(() => ({ published: [] as string[], canonical: [] as string[] }))
  // round robin: the i-th oldest event of each endpoint, then the (i+1)-th ...
  const order: Array<[number, number]> = []
  const longest = Math.max(0, ...decision.endpoints.map(e => e.offsets.length))
  for (let i = 0; i < longest; i++) decision.endpoints.forEach((e, k) => { if (i < e.offsets.length) order.push([k, e.offsets[i]!]) })

  // the message is assembled as text, each event serialised once; sized as it grows
  const head = (id: string): string => `{"eventID":${JSON.stringify(id)},"date":${JSON.stringify(iso(decision.at))},"serviceName":${JSON.stringify(rule.name)},"triggerType":${JSON.stringify(decision.triggerType)},"events":{`
  const listHead = decision.endpoints.map(e => `${JSON.stringify(e.eventKey)}:{${e.count === 0 ? '' : `"FirstEventDate":${JSON.stringify(iso(e.first!))},"lastEventDate":${JSON.stringify(iso(e.last!))},`}"numberOfEvents":${e.count},"events":[`)
  const tail = (truncated: boolean): string => `},"triggerOffset":${decision.cause}${truncated ? ',"truncated":true' : ''}}`
  let used = Buffer.byteLength(head('0'.repeat(32)) + listHead.join(']},') + ']}' + tail(true))
  let taken = 0
  let missing = 0
  let full = false
  for (let i = 0; i < order.length && !full; i += READ_BATCH) {
    const batch = order.slice(i, i + READ_BATCH)
    const entries = await readEntries(batch.map(([, offset]) => offset), read)
    for (const [k, offset] of batch) {
      const entry = entries.get(offset)
      if (entry === undefined) {
        missing++
        continue
      }
      const event = outputEvent(entry, rule.endpoints[k]!)
      const text = JSON.stringify(event)
      const size = Buffer.byteLength(text) + 1
      if (used + size > maxBytes) {
        full = true
        break
      }
      used += size
      lists[k]!.published.push(text)
      lists[k]!.canonical.push(canonicalEvent(event))
      taken++
    }
  }
  const leftOut = order.length - taken - missing
  const eventId = createHash('md5').update(canonicalEvents(decision, lists.map(l => l.canonical))).digest('hex')
  const events = listHead.map((h, k) => `${h}${lists[k]!.published.join(',')}]}`).join(',')
  return { payload: Buffer.from(head(eventId) + events + tail(leftOut > 0)), eventId, leftOut, missing }
}

/** An event's canonical JSON, written out (what canonicalJson gives for it, without walking it). */
function canonicalEvent (e: OutputEvent): string {
  return `{"content":${JSON.stringify(e.content)},${e.contentEncoding === undefined ? '' : `"contentEncoding":${JSON.stringify(e.contentEncoding)},`}"datetime":${JSON.stringify(e.datetime)},"eventKey":${JSON.stringify(e.eventKey)},"headers":${canonicalJson(e.headers)},"offset":${e.offset},"queryParams":${canonicalJson(e.queryParams)},"topic":${JSON.stringify(e.topic)}}`
}

/** The canonical JSON of a combined event's `events`, from its events' canonical texts. */
function canonicalEvents (decision: Decision, canonical: readonly string[][]): string {
  const lists = decision.endpoints.map((e, k) => [e.eventKey, `{${e.count === 0 ? '' : `"FirstEventDate":${JSON.stringify(iso(e.first!))},`}"events":[${canonical[k]!.join(',')}],${e.count === 0 ? '' : `"lastEventDate":${JSON.stringify(iso(e.last!))},`}"numberOfEvents":${e.count}}`] as const)
  return `{${[...lists].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([key, text]) => `${JSON.stringify(key)}:${text}`).join(',')}}`
}

/** What the engine needs of a published combined event to know it is in the journal. */
export function outputIdentity (entry: JournalEntry): { serviceName: string, triggerOffset: number } | undefined {
  if (entry.json !== true) return undefined
  try {
    const value = JSON.parse(entry.payload.toString('utf8')) as { serviceName?: unknown, triggerOffset?: unknown }
    return typeof value.serviceName === 'string' && typeof value.triggerOffset === 'number' ? { serviceName: value.serviceName, triggerOffset: value.triggerOffset } : undefined
  } catch {
    return undefined
  }
}
