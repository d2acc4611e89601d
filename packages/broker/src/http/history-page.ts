import type { FastifyRequest } from 'fastify'
import type { HistoryApiDeps } from './api.js'
import { envelopeOf, type Envelope } from './envelope.js'
import { HttpError, readerOf } from './reader-access.js'
import { entryFilter, readableFilters, resolveStart, startParameter } from './stream-request.js'

export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 1000
/** entries looked at per request, matching or not: bounds one request's work */
const MAX_SCANNED = 20_000

export interface HistoryPage {
  events: Envelope[]
  /** the path to GET for the following page; null at the end of what exists now */
  next: string | null
}

/**
 * GET /v1/history?topic=FILTER[&topic=...][&since=...][&until=...][&limit=N]: one page of
 * history, oldest first. `since` is inclusive (default: the oldest held), `until` exclusive.
 */
export async function historyPage (request: FastifyRequest, deps: HistoryApiDeps): Promise<HistoryPage> {
  const query = request.query as Record<string, unknown>
  const reader = await readerOf(request, deps.access)
  const filters = readableFilters(query.topic, reader)
  const since = startParameter('since', query.since) ?? { offset: 0 }
  const until = startParameter('until', query.until)
  const limit = query.limit === undefined ? DEFAULT_LIMIT : Number(query.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) throw new HttpError(400, `limit: ${JSON.stringify(query.limit)} is not a whole number from 1 to ${MAX_LIMIT}`)

  const { from, minTimestamp } = await resolveStart(deps.journal, since)
  const accept = entryFilter(filters, reader, minTimestamp)
  const beyond = until === undefined
    ? () => false
    : 'offset' in until ? (offset: number, _ts: number) => offset >= until.offset : (_offset: number, ts: number) => ts >= until.timestamp
  const events: Envelope[] = []
  let next = from
  let scanned = 0
  let ended = false
  while (events.length < limit && scanned < MAX_SCANNED) {
    const batch = await deps.journal.read(next, Math.min(500, MAX_SCANNED - scanned))
    if (batch.length === 0) { ended = true; break }
    for (const entry of batch) {
      if (beyond(entry.offset, entry.timestamp)) { ended = true; break }
      scanned++
      next = entry.offset + 1
      if (accept(entry)) events.push(envelopeOf(entry, reader.username !== undefined))
      if (events.length === limit) break
    }
    if (ended) break
  }
  if (!ended && events.length === limit && next > deps.journal.bounds().last) ended = true
  return { events, next: ended ? null : nextPath(query, next) }
}

function nextPath (query: Record<string, unknown>, since: number): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (key === 'since') continue
    for (const v of Array.isArray(value) ? value : [value]) params.append(key, String(v))
  }
  params.set('since', String(since))
  return `/v1/history?${params.toString()}`
}
