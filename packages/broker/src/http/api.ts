import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { EventSyncService } from '@firehose/event-sync'
import type { Journal } from '@firehose/journal'
import type { Catalogue } from '@firehose/schemas'
import type { Subscriptions } from '@firehose/subscriptions'
import type { AccessControl } from '../auth/access-control.js'
import type { Limits } from '../config/types.js'
import type { BrokerStats } from '../observability/stats.js'
import type { FrameCache } from './envelope.js'
import { historyPage } from './history-page.js'
import { HttpError } from './reader-access.js'
import { serveEvents } from './sse.js'
import { NO_JOURNAL, type StreamLimits } from './stream-limits.js'
import { registerEventSyncApi } from './event-sync-api.js'
import { registerSchemasApi } from './schemas-api.js'
import { registerSubscriptionsApi, subscriptionRefusal } from './subscriptions-api.js'
import { registerViewer } from './viewer.js'

export interface HistoryApiDeps {
  journal: Journal
  access: AccessControl
  limits: Limits
  stats: BrokerStats
  streams: StreamLimits
  frames: FrameCache
  /** none: subscriptions: false */
  subscriptions?: Subscriptions
  /** none: eventSync: false, or a cluster node */
  eventSync?: EventSyncService
  /** users who manage every user's subscriptions and event-sync rules */
  admins: readonly string[]
  logger: Logger
  /** a request became a long-lived stream: the connection guard's handshake timeout no longer applies */
  keepOpen: (socket: Socket) => void
}

const NO_EVENT_SYNC = 'this broker runs no event sync (eventSync: false in its configuration, or a cluster node: see docs/event-sync.md)'
const NO_SUBSCRIPTIONS = 'this broker serves no subscriptions (subscriptions: false in its configuration: see docs/subscriptions.md)'

/** The text an HTTP request with no route gets: what this port is for. */
const ABOUT = 'Firehose: open / in a browser for the live viewer (docs/viewer.md); connect with an MQTT client over WebSocket (subprotocol "mqtt"), on any path; history: GET /v1/events?topic=%23 (Server-Sent Events) or /v1/history?topic=%23. See docs/history.md.\n'

/**
 * The HTTP side of a WebSocket listener: the journal's read API and the viewer. `serverFactory`
 * hands fastify the listener's own server (the WebSocket upgrade stays the listener's).
 */
export function createHistoryApi (deps: HistoryApiDeps | undefined, server: () => Server, catalogue?: Catalogue): FastifyInstance {
  const app = Fastify({
    serverFactory: handler => {
      const s = server()
      s.on('request', handler)
      return s
    },
    logger: false,
    // the listener's server already bounds header and request time
    return503OnClosing: false,
    forceCloseConnections: false
  })
  app.setErrorHandler((thrown, _request, reply) => {
    const err = subscriptionRefusal(thrown) ?? thrown
    if (err instanceof HttpError) {
      if (deps !== undefined) deps.stats.historyRefused++
      return reply.code(err.status).headers(err.headers).type('text/plain; charset=utf-8').send(`${err.message}\n`)
    }
    const status = (err as { statusCode?: number }).statusCode ?? 500
    if (status >= 500) deps?.logger.error({ err }, 'history API error')
    return reply.code(status).type('text/plain; charset=utf-8').send(`${status >= 500 ? 'internal error' : (err as Error).message}\n`)
  })
  app.setNotFoundHandler((_request, reply) => reply.code(426).header('upgrade', 'websocket').type('text/plain; charset=utf-8').send(ABOUT))
  registerViewer(app)
  const notServed = (paths: string[], why: string): void => {
    for (const path of paths) app.all(path, (_request, reply) => reply.code(404).type('text/plain; charset=utf-8').send(`${why}\n`))
  }
  if (deps?.subscriptions === undefined) {
    notServed(['/v1/subscriptions', '/v1/subscriptions/*'], deps === undefined ? NO_JOURNAL : NO_SUBSCRIPTIONS)
  } else {
    registerSubscriptionsApi(app, { subscriptions: deps.subscriptions, journal: deps.journal, access: deps.access })
  }
  if (catalogue !== undefined) registerSchemasApi(app, catalogue)
  if (deps?.eventSync === undefined) {
    notServed(['/v1/event-sync', '/v1/event-sync/*'], deps === undefined ? NO_JOURNAL : NO_EVENT_SYNC)
  } else {
    // an event's body must fit in one journal entry (a PUBLISH), wrapped in JSON with its headers
    registerEventSyncApi(app, { eventSync: deps.eventSync, access: deps.access, admins: new Set(deps.admins), maxEventBytes: Math.floor(deps.limits.maxPacketSize / 2) })
  }
  if (deps === undefined) {
    notServed(['/v1/events', '/v1/history', '/v1/journal'], NO_JOURNAL)
    return app
  }
  app.get('/v1/events', async (request, reply) => { await serveEvents(request, reply, deps) })
  app.get('/v1/history', async request => await historyPage(request, deps))
  app.get('/v1/journal', async () => deps.journal.bounds())
  return app
}
