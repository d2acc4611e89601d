import type { ServerResponse } from 'node:http'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { follow } from '@firehose/journal'
import type { HistoryApiDeps } from './api.js'
import { readerOf, HttpError } from './reader-access.js'
import { SseOutput } from './sse-output.js'
import { cutOffSlowReader, HISTORY_HIGH_WATER } from './stream-limits.js'
import { entryFilter, readableFilters, resolveStart, startParameter } from './stream-request.js'

export const KEEP_ALIVE_MS = 15_000

/**
 * GET /v1/events?topic=FILTER[&topic=...][&since=...]: Server-Sent Events, history from `since`
 * (or after `Last-Event-ID`) then live, each event `id: <offset>`, `event: message`,
 * `data: { offset, timestamp, topic, payload }`.
 */
export async function serveEvents (request: FastifyRequest, reply: FastifyReply, deps: HistoryApiDeps): Promise<void> {
  const query = request.query as Record<string, unknown>
  const reader = await readerOf(request, deps.access)
  const filters = readableFilters(query.topic, reader)
  const lastEventId = request.headers['last-event-id']
  let start = startParameter('since', query.since)
  if (lastEventId !== undefined && lastEventId !== '') {
    if (!/^\d+$/.test(String(lastEventId))) throw new HttpError(400, `Last-Event-ID: ${JSON.stringify(lastEventId)} is not an offset`)
    start = { offset: Number(lastEventId) + 1 } // resume after it
  }
  const release = deps.streams.take(reader.ip)
  const resolved = await resolveStart(deps.journal, start).catch((err: unknown) => { release(); throw err })

  reply.hijack()
  deps.keepOpen(request.socket)
  const res = reply.raw
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
    ...(resolved.truncatedTo === undefined ? {} : { 'x-firehose-history-start': String(resolved.truncatedTo) })
  })
  res.write(resolved.truncatedTo === undefined ? ': firehose\n\n' : `: history starts at offset ${resolved.truncatedTo}: older events are past retention\n\n`)

  // the frames of one event-loop turn (a history page, a batch of live appends) are written at once
  const output = new SseOutput()
  const write = (data: Buffer, sent?: () => void): void => { res.write(data, sent) }
  const flush = (): void => {
    if (res.destroyed) return
    output.flush(write)
  }
  const following = follow(deps.journal, {
    from: resolved.from,
    accept: entryFilter(filters, reader, resolved.minTimestamp),
    deliver: (entry, live) => {
      if (output.length === 0) setImmediate(flush)
      if (live) output.addFrame(deps.frames.parts(entry))
      else output.add(entry)
      const queued = res.writableLength + output.length
      // history waits for the reader past a megabyte in hand; live cannot wait: past the limit it is cut off
      if (!live) {
        if (queued <= HISTORY_HIGH_WATER) return
        flush()
        return drained(res)
      }
      if (queued > deps.limits.maxQueuedBytes) cutOffSlowReader(deps, reader.ip, res.writableLength, () => res.destroy())
    }
  })
  const keepAlive = setInterval(() => res.write(': keep-alive\n\n'), KEEP_ALIVE_MS)
  res.on('close', () => {
    clearInterval(keepAlive)
    following.stop()
    release()
  })
  following.done.catch((err: unknown) => {
    deps.logger.error({ err }, 'history stream failed')
    res.destroy()
  })
}

async function drained (res: ServerResponse): Promise<void> {
  if (res.destroyed || !res.writableNeedDrain) return
  await new Promise<void>(resolve => {
    const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  })
}
