import { createRequire } from 'node:module'
import { Aedes, type Client, type PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import type { EventSyncService } from '@firehose/event-sync'
import { Catalogue } from '@firehose/schemas'
import { ConfigError, startOpsServer, type OpsServer } from '@firehose/runtime'
import { dropDeniedPublishes } from './aedes/drop-denied-publishes.js'
import { asEmitter, brokerInternals, connectedClients } from './aedes/internals.js'
import { limitSessions } from './aedes/session-limits.js'
import { drainWithoutRecursion } from './aedes/mqemitter-drain-loop.js'
import { ProtocolViolation } from './aedes/strict-packets.js'
import { journalBeforePublish } from './aedes/journal-before-publish.js'
import { orderOutgoingUpdates } from './aedes/ordered-outgoing-updates.js'
import { orderPublishesPerClient } from './aedes/ordered-publishes.js'
import { publishBeforePuback } from './aedes/publish-before-puback.js'
import { publishQos2Once } from './aedes/qos2-published-once.js'
import { queueBeforeLive } from './aedes/queue-before-live.js'
import { recordQos2AfterPublish } from './aedes/record-qos2-after-publish.js'
import { checkAedesPatches } from './aedes/self-check.js'
import { shareAddSubscriptions } from './aedes/shared-add-subscriptions.js'
import { AccessControl } from './auth/access-control.js'
import type { BrokerConfig, ListenerConfig } from './config/types.js'
import { createAuthenticate } from './hooks/authenticate.js'
import { createAuthorizeForward } from './hooks/authorize-forward.js'
import { createAuthorizePublish } from './hooks/authorize-publish.js'
import { createAuthorizeSubscribe } from './hooks/authorize-subscribe.js'
import { remoteAddress, type HookContext, type Session } from './hooks/context.js'
import { createPreConnect } from './hooks/pre-connect.js'
import { createConnectionHandler } from './listeners/connection-handler.js'
import { ConnectionGuard } from './listeners/connection-guard.js'
import { StalledSubscriberGuard } from './listeners/stalled-subscriber.js'
import type { Listener } from './listeners/listener.js'
import { startTcpListener, type ListenerDeps } from './listeners/tcp.js'
import { startWebSocketListener } from './listeners/websocket.js'
import { createMetrics } from './observability/metrics.js'
import { StreamLimits } from './http/stream-limits.js'
import { openJournal } from './journal/open-journal.js'
import { openEventSync } from './journal/open-event-sync.js'
import { openSubscriptions, subscriptionTotals } from './journal/open-subscriptions.js'
import { BrokerStats } from './observability/stats.js'
import { SysTopics } from './observability/sys-topics.js'
import { loadConfig } from './config/load.js'
import { createReload } from './reload.js'
import { openStore } from './store.js'

const { version } = createRequire(import.meta.url)('../package.json') as { version: string }

/**
 * Aedes looks for the stored wills of dead brokers every 4 heartbeats (1 minute by default).
 * A single broker's previous run is such a broker: its clients' wills go out within 4 of
 * these of a restart after a crash (10 s), not 4 minutes.
 */
export const SINGLE_NODE_HEARTBEAT_SECONDS = 2.5

export interface BrokerDeps {
  logger: Logger
  /** milliseconds since the epoch */
  now?: () => number
}

export interface FirehoseBroker {
  readonly aedes: Aedes
  readonly stats: BrokerStats
  readonly listeners: readonly Listener[]
  /** bound port of each listener, by listener name (`mqtt:1883`, ...) */
  readonly ports: ReadonlyMap<string, number>
  readonly adminPort: number | undefined
  /** Re-reads users, ACL and TLS certificates (SIGHUP); connections stay up. */
  reload: () => Promise<boolean>
  /** Stops accepting, disconnects clients, flushes persistence. */
  close: () => Promise<void>
}

/** Assembles the broker: access control, store, Aedes with Firehose's hooks and patches, listeners, $SYS, admin. */
export async function startBroker (config: BrokerConfig, deps: BrokerDeps): Promise<FirehoseBroker> {
  const logger = deps.logger
  const now = deps.now ?? Date.now
  // the schemas ship with the broker: a broken file stops the start before anything is opened
  const catalogue = await Catalogue.load()
  const access = new AccessControl({ passwordFile: config.passwordFile, aclFile: config.aclFile })
  const problems = await access.load()
  if (problems.length > 0) throw new ConfigError(problems, config.source)

  const store = await openStore(config, logger)
  const journal = config.journal === false
    ? undefined
    : await openJournal(config.journal, config.source, logger, store.cluster).catch(async (err: unknown) => { await store.close(logger); throw err })
  const subscriptions = journal === undefined || config.subscriptions === false
    ? undefined
    : await openSubscriptions(config.subscriptions, journal, access, config.source, logger, store.cluster).catch(async (err: unknown) => { await journal.close(); await store.close(logger); throw err })
  const { persistence, cluster } = store
  const stats = new BrokerStats()
  const stalled = new StalledSubscriberGuard(config.limits.maxQueuedBytes, stats, logger)
  const ctx: HookContext = {
    access,
    sessions: new WeakMap<Client, Session>(),
    rejectedIds: new WeakSet<Client>(),
    denied: new WeakSet<PublishPacket>(),
    stats,
    stalled,
    limits: config.limits,
    logger
  }
  const recordedWithPublish = new WeakSet<PublishPacket>()
  const published = persistence === undefined ? undefined : recordQos2AfterPublish(persistence, recordedWithPublish)
  if (persistence !== undefined) {
    shareAddSubscriptions(persistence)
    orderOutgoingUpdates(persistence)
  }
  const broker = await Aedes.createBroker({
    ...(published === undefined ? {} : { published }),
    persistence: store.aedesPersistence,
    ...(cluster === undefined || config.cluster === false
      ? { heartbeatInterval: SINGLE_NODE_HEARTBEAT_SECONDS * 1000, ...(store.brokerId === undefined ? {} : { id: store.brokerId }) }
      : { id: cluster.id, mq: cluster.mq as never, heartbeatInterval: config.cluster.heartbeatInterval * 1000 }),
    preConnect: createPreConnect(ctx),
    authenticate: createAuthenticate(ctx),
    authorizePublish: createAuthorizePublish(ctx),
    authorizeSubscribe: createAuthorizeSubscribe(ctx),
    authorizeForward: createAuthorizeForward(ctx),
    connectTimeout: config.limits.connectTimeout * 1000,
    maxTopicLevels: config.limits.maxTopicLevels,
    // Aedes applies this to MQTT 3.1 only, where the spec caps ids at 23 characters
    maxClientsIdLength: 23
  })
  try {
    checkAedesPatches(broker, { cluster: cluster !== undefined })
  } catch (err) {
    await new Promise<void>(resolve => broker.close(() => resolve()))
    await subscriptions?.close()
    await journal?.close()
    await store.close(logger)
    throw err
  }
  // innermost: it takes the counter Aedes' own publish is about to give the message
  if (cluster !== undefined) publishQos2Once(broker, recordedWithPublish)
  orderPublishesPerClient(broker)
  if (journal !== undefined && config.journal !== false) journalBeforePublish(broker, { journal, topics: config.journal.topics, sessions: ctx.sessions, stats, logger, ...(subscriptions === undefined ? {} : { onAppendFailed: (topic: string) => { subscriptions.appendFailed(topic) } }) })
  const publishedBeforePuback = new WeakSet<PublishPacket>()
  dropDeniedPublishes(broker, ctx.denied, publishedBeforePuback)
  publishBeforePuback(broker, ctx.denied, publishedBeforePuback)
  queueBeforeLive(broker)
  drainWithoutRecursion(brokerInternals(broker).mq)
  // bounded queues and expiring sessions, on whichever store
  const sessionLimits = await limitSessions(broker, await store.sessionStore(broker), {
    maxQueuedMessages: config.limits.maxQueuedMessages,
    expiryMs: { anonymous: config.limits.sessionExpiryMs, user: config.limits.userSessionExpiryMs },
    userOf: client => ctx.sessions.get(client)?.username,
    stats,
    log: (level, event, fields, message) => { logger[level]({ event, ...fields }, message) }
  })
  let eventSync: EventSyncService | undefined
  if (journal !== undefined && config.journal !== false && config.eventSync !== false) {
    try {
      eventSync = await openEventSync(config.eventSync, config.journal, journal, broker, config.limits.maxPacketSize, config.source, logger, cluster)
    } catch (err) {
      await new Promise<void>(resolve => broker.close(() => resolve()))
      await subscriptions?.close()
      await journal.close()
      await store.close(logger)
      throw err
    }
  }
  // Aedes emits 'error' when its store fails while queueing a message; without a listener that
  // would crash us. (A will it fails to publish in its heartbeat check is an unhandled rejection
  // instead, which no listener catches: docs/upstream.md, entry 7.)
  asEmitter(broker).on('error', (err: unknown) => logger.error({ err }, 'broker error'))
  const clientError = (client: Client, err: Error): void => {
    if (err instanceof ProtocolViolation) {
      stats.protocolViolations++
      logger.info({ event: 'client.protocol-violation', clientId: client.id ?? undefined, ip: remoteAddress(client), reason: err.message }, 'connection closed: a packet breaks MQTT 3.1.1')
    } else {
      logger.debug({ clientId: client.id ?? undefined, err: err.message }, client.id === null ? 'connection error before CONNECT' : 'client error')
    }
  }
  broker.on('clientError', clientError)
  broker.on('connectionError', clientError)

  // persistent sessions seen offline since start, for $SYS clients/disconnected
  const persistentOffline = new Set<string>()
  broker.on('clientReady', client => { persistentOffline.delete(client.id) })
  broker.on('clientDisconnect', client => { if (!client.clean) persistentOffline.add(client.id) })

  // Messages published while Redis was away reached the nodes' message channel late or not at
  // all, but they are in each persistent session's queue in Redis: such sessions are asked to
  // reconnect, which replays the queue. Clean sessions have no queue to replay.
  cluster?.onRecovered(() => {
    const persistent = connectedClients(broker).filter(client => !client.clean)
    for (const client of persistent) client.close()
    logger.warn({ event: 'cluster.sessions-replayed', persistentSessions: persistent.length }, 'Redis is back: persistent sessions reconnect to replay what was queued meanwhile')
  })

  const guard = new ConnectionGuard(config.limits, stats, logger)
  const streams = new StreamLimits(config.limits.maxStreamsPerIp)
  const listenerDeps: ListenerDeps = {
    guard,
    limits: config.limits,
    stats,
    logger,
    source: config.source,
    handle: createConnectionHandler(broker, stalled),
    catalogue,
    ...(journal === undefined ? {} : { history: { journal, access, limits: config.limits, stats, streams, logger, admins: config.subscriptions === false ? [] : config.subscriptions.admins, ...(subscriptions === undefined ? {} : { subscriptions }), ...(eventSync === undefined ? {} : { eventSync }) } })
  }
  const listeners: Listener[] = []
  const sys = new SysTopics({
    broker,
    stats,
    guard,
    logger,
    version,
    now,
    intervalSeconds: config.sysInterval,
    disconnectedClients: () => persistentOffline.size,
    ...(journal === undefined ? {} : { journal: () => journal.bounds() }),
    ...(subscriptions === undefined ? {} : { subscriptions: () => subscriptionTotals(subscriptions.all()) })
  })
  let admin: OpsServer | undefined

  const close = async (): Promise<void> => {
    sys.stop()
    sessionLimits.close()
    // stop accepting first; a server's close completes only once its connections are gone
    const closing = Promise.all(listeners.map(async l => await l.close().catch(() => {})))
    // before the broker: a combined event being published goes out, and where each rule stands is written
    await eventSync?.close().catch((err: unknown) => { logger.error({ err }, 'event sync did not close cleanly') })
    await new Promise<void>(resolve => broker.close(() => resolve()))
    guard.destroyAll()
    await closing
    await admin?.close()
    await subscriptions?.close()
    await journal?.close()
    await store.close(logger)
  }

  try {
    for (const [index, l] of config.listeners.entries()) {
      const start = l.protocol === 'mqtt' ? startTcpListener : startWebSocketListener
      listeners.push(await start(l, `listeners[${index}]`, listenerDeps))
    }
    if (config.admin !== false) {
      admin = await startOpsServer({ ...config.admin, name: 'admin' }, {
        registry: createMetrics({
          broker,
          stats,
          guard,
          listeners: () => config.listeners,
          ...(journal === undefined ? {} : { journal: () => journal.bounds(), historyStreams: () => streams.open }),
          ...(subscriptions === undefined ? {} : { subscriptions: () => subscriptions.all(), pushing: (name: string) => subscriptions.pushing(name), eventTotals: () => subscriptions.totals }),
          ...(eventSync === undefined ? {} : { eventSync }),
          ...(store.tidy === undefined ? {} : { store: store.tidy })
        }),
        logger,
        health: () => ({ ok: !broker.closed, clients: broker.connectedClients, listeners: listeners.map(l => ({ name: l.config.name, port: l.port })) })
      })
    }
  } catch (err) {
    await close()
    throw err
  }
  sys.start()
  if (config.passwordFile === undefined) logger.warn('no passwordFile: there are no users, so nobody can publish')
  else if (config.aclFile === undefined) logger.warn('no aclFile: every user may publish to any topic outside $')

  const ports = new Map(listeners.map(l => [l.config.name, l.port] as const))
  logger.info({ event: 'broker.started', version, listeners: Object.fromEntries(ports) }, 'firehose broker started')
  return { aedes: broker, stats, listeners, ports, adminPort: admin?.port, reload: createReload({ broker, access, ctx, listeners, logger, ...(eventSync === undefined || config.source === 'defaults' ? {} : { reloadEventSync: async () => await reloadRules(eventSync, config.source, logger) }) }), close }
}

/** SIGHUP: the event-sync rules of the configuration file as it is now (a file with problems changes nothing). */
async function reloadRules (eventSync: EventSyncService, source: string, logger: Logger): Promise<boolean> {
  try {
    const next = await loadConfig(source)
    await eventSync.replaceConfigRules(next.eventSync === false ? [] : next.eventSync.rules)
    logger.info({ event: 'eventsync.reloaded', rules: eventSync.rules().length }, 'event-sync rules reloaded')
    return true
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [(err as Error).message]
    logger.error({ event: 'eventsync.reload-refused', problems }, 'reload refused: event-sync rules unchanged')
    return false
  }
}

export type { ListenerConfig }
