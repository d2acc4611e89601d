import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { follow, type JournalEntry } from '@firehose/journal'
import type { WebSocket, WebSocketServer } from 'ws'
import type { HistoryApiDeps } from './api.js'
import { readablePayload } from './envelope.js'
import { HttpError, readerOf } from './reader-access.js'
import { parseDatetime, SINCE_PROBLEM, type Start } from './since.js'
import { cutOffSlowReader, HISTORY_HIGH_WATER, NO_JOURNAL } from './stream-limits.js'
import { entryFilter, readableFilters, resolveStart } from './stream-request.js'

/** Where a stream subscription is read: /event-stream/{id} (the id is the capability). */
export const EVENT_STREAM_PATH = '/event-stream/'

/** Paths where an upgrade offering no MQTT subprotocol is a JSON stream. */
export function isStreamPath (path: string): boolean {
  return path === '/v1/stream' || path.startsWith(EVENT_STREAM_PATH)
}

const PING_MS = 30_000

/**
 * The start of a WebSocket stream, the event-stream service's way: X-StreamOffsetFromOrdinal
 * (an offset), X-StreamOffsetFromTimestamp (ms), X-StreamOffsetFromDatetime (ISO 8601, UTC
 * without a zone), as headers or as query parameters of the same names (browsers cannot set
 * WebSocket headers). None: only new events.
 */
export function streamStart (req: IncomingMessage, query: URLSearchParams): Start | undefined {
  const value = (name: string): string | undefined => (req.headers[name.toLowerCase()] as string | undefined) ?? query.get(name) ?? undefined
  const ordinal = value('X-StreamOffsetFromOrdinal')
  if (ordinal !== undefined) {
    if (!/^\d+$/.test(ordinal.trim())) throw new HttpError(400, `X-StreamOffsetFromOrdinal: ${JSON.stringify(ordinal)} is not an offset`)
    return { offset: Number(ordinal) }
  }
  const timestamp = value('X-StreamOffsetFromTimestamp')
  if (timestamp !== undefined) {
    if (!/^\d+$/.test(timestamp.trim())) throw new HttpError(400, `X-StreamOffsetFromTimestamp: ${JSON.stringify(timestamp)} is not a ms timestamp`)
    return { timestamp: Number(timestamp) }
  }
  const datetime = value('X-StreamOffsetFromDatetime')
  if (datetime !== undefined) {
    const start = parseDatetime(datetime)
    if (start === undefined) throw new HttpError(400, `X-StreamOffsetFromDatetime: ${JSON.stringify(datetime)} ${SINCE_PROBLEM.replace('an offset, a ms timestamp or ', '')}`)
    return start
  }
  return undefined
}

/** One message: the event's own JSON object with `ess_offset` and `ess_timestamp`, or `{ topic, payload }` wrapped. */
export function streamMessage (entry: JournalEntry): string {
  const added = `"ess_offset":${entry.offset},"ess_timestamp":${entry.timestamp}`
  if (entry.json === true) {
    // an object's own text, the two keys spliced in before its closing brace: not parsed again
    const text = entry.payload.toString('utf8').trim()
    if (text.startsWith('{') && text.endsWith('}')) {
      return text.slice(1, -1).trim() === '' ? `{${added}}` : `${text.slice(0, -1)},${added}}`
    }
  }
  const readable = readablePayload(entry.payload)
  const own = 'payload' in readable ? readable.payload : undefined
  const object = own !== null && typeof own === 'object' && !Array.isArray(own)
    ? own as Record<string, unknown>
    : { topic: entry.topic, ...readable }
  return JSON.stringify({ ...object, ess_offset: entry.offset, ess_timestamp: entry.timestamp })
}

/**
 * GET /v1/stream?topic=FILTER upgraded without an MQTT subprotocol: history from the start the
 * X-StreamOffsetFrom* headers (or parameters) name, then live, one JSON text message per event.
 * Refusals are HTTP answers before the upgrade.
 */
export async function serveStreamUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer, wss: WebSocketServer, deps: HistoryApiDeps | undefined): Promise<void> {
  let release: (() => void) | undefined
  try {
    if (deps === undefined) throw new HttpError(404, NO_JOURNAL)
    const url = new URL(req.url ?? '/', 'http://firehose')
    const startAt = streamStart(req, url.searchParams)
    let accept: (entry: JournalEntry) => boolean
    let ip = req.socket.remoteAddress ?? ''
    let attach: ((close: () => void) => () => void) | undefined
    if (url.pathname.startsWith(EVENT_STREAM_PATH)) {
      // a stream subscription: whoever holds its id reads what its owner may read on its topics
      const queue = await deps.subscriptions?.byStreamId(decodeURIComponent(url.pathname.slice(EVENT_STREAM_PATH.length)))
      if (queue === undefined) throw new HttpError(404, 'no such event stream')
      accept = entry => queue.accepts(entry)
      attach = close => deps.subscriptions!.attachStreamReader(queue.name, close)
    } else {
      const reader = await readerOf(req, deps.access)
      ip = reader.ip
      accept = entryFilter(readableFilters(url.searchParams.getAll('topic'), reader), reader)
    }
    const resolved = await resolveStart(deps.journal, startAt)
    const minTimestamp = resolved.minTimestamp
    release = deps.streams.take(ip)
    const taken = release
    wss.handleUpgrade(req, socket, head, ws => {
      deps.keepOpen(req.socket)
      const detach = attach?.(() => { ws.close(1001, 'subscription deleted') })
      if (detach !== undefined) ws.on('close', detach)
      stream(ws, { from: resolved.from, accept: entry => entry.timestamp >= minTimestamp && accept(entry), ip }, deps, taken)
    })
  } catch (err) {
    release?.()
    const status = err instanceof HttpError ? err.status : 500
    if (err instanceof HttpError) {
      if (deps !== undefined) deps.stats.historyRefused++
    } else {
      deps?.logger.error({ err }, 'history stream upgrade failed')
    }
    const message = err instanceof HttpError ? err.message : 'internal error'
    const headers = err instanceof HttpError ? Object.entries(err.headers).map(([k, v]) => `${k}: ${v}\r\n`).join('') : ''
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(message) + 1}\r\n${headers}connection: close\r\n\r\n${message}\n`)
  }
}

function stream (ws: WebSocket, start: { from: number, accept: (entry: JournalEntry) => boolean, ip: string }, deps: HistoryApiDeps, release: () => void): void {
  const following = follow(deps.journal, {
    from: start.from,
    accept: start.accept,
    deliver: async (entry, live) => {
      const text = streamMessage(entry)
      if (live) {
        if (ws.bufferedAmount > deps.limits.maxQueuedBytes) {
          cutOffSlowReader(deps, start.ip, ws.bufferedAmount, () => ws.terminate())
          return
        }
        ws.send(text)
        return
      }
      if (ws.bufferedAmount < HISTORY_HIGH_WATER) {
        ws.send(text)
        return
      }
      await new Promise<void>(resolve => ws.send(text, () => resolve()))
    }
  })
  const ping = setInterval(() => ws.ping(), PING_MS)
  ws.on('close', () => {
    clearInterval(ping)
    following.stop()
    release()
  })
  ws.on('error', () => ws.terminate())
  // readers send nothing; anything they do send is ignored
  following.done.catch((err: unknown) => {
    deps.logger.error({ err }, 'history stream failed')
    ws.terminate()
  })
}
