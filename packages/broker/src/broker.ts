import { createRequire } from 'node:module'
import { Aedes, type Client, type PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { startAdminServer, type AdminServer } from './admin-server.js'
import { AccessControl } from './auth/access-control.js'
import { connectedClients } from './broker-state.js'
import type { BrokerConfig, ListenerConfig } from './config/types.js'
import { ConnectionGuard } from './connection-guard.js'
import { ConfigError } from '@firehose/config'
import { createAuthenticate } from './hooks/authenticate.js'
import { createAuthorizeForward } from './hooks/authorize-forward.js'
import { createAuthorizePublish } from './hooks/authorize-publish.js'
import { createAuthorizeSubscribe } from './hooks/authorize-subscribe.js'
import type { HookContext, Session } from './hooks/context.js'
import { dropDeniedPublishes } from './hooks/drop-denied-publishes.js'
import { createPreConnect } from './hooks/pre-connect.js'
import { recordQos2AfterPublish } from './hooks/record-qos2-after-publish.js'
import type { Listener } from './listeners/listener.js'
import { startTcpListener, type ListenerDeps } from './listeners/tcp.js'
import { startWebSocketListener } from './listeners/websocket.js'
import { createConnectionHandler } from './connection-handler.js'
import { createMetrics } from './metrics.js'
import { connectCluster, type ClusterBackends } from './cluster/redis-backends.js'
import { openLevelPersistence, type AedesPersistence } from './persistence.js'
import { BrokerStats } from './stats.js'
import { SysTopics } from './sys-topics.js'

const { version } = createRequire(import.meta.url)('../package.json') as { version: string }

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

export async function startBroker (config: BrokerConfig, deps: BrokerDeps): Promise<FirehoseBroker> {
  const logger = deps.logger
  const now = deps.now ?? Date.now
  const access = new AccessControl({ passwordFile: config.passwordFile, aclFile: config.aclFile })
  const problems = await access.load()
  if (problems.length > 0) throw new ConfigError(problems, config.source)

  let persistence: AedesPersistence | undefined
  let cluster: ClusterBackends | undefined
  if (config.cluster !== false) {
    cluster = await connectCluster(config.cluster, logger, config.source)
    persistence = cluster.persistence
  } else if (config.persistence !== false) {
    try {
      persistence = await openLevelPersistence(config.persistence.dir)
    } catch (err) {
      const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message
      throw new ConfigError([`persistence.dir: cannot open the store in ${config.persistence.dir}: ${cause}` +
        (/lock/i.test(cause) ? ' (is another broker using this directory?)' : '')], config.source)
    }
  }

  const stats = new BrokerStats()
  const ctx: HookContext = {
    access,
    sessions: new WeakMap<Client, Session>(),
    rejectedIds: new WeakSet<Client>(),
    denied: new WeakSet<PublishPacket>(),
    stats,
    limits: config.limits,
    logger
  }
  const published = persistence === undefined ? undefined : recordQos2AfterPublish(persistence)
  const broker = await Aedes.createBroker({
    ...(published === undefined ? {} : { published }),
    ...(persistence === undefined ? {} : { persistence }),
    ...(cluster === undefined || config.cluster === false
      ? {}
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
  dropDeniedPublishes(broker, ctx.denied)
  // Aedes emits 'error' when it cannot publish a stored will; without a listener that would crash us
  ;(broker as unknown as NodeJS.EventEmitter).on('error', (err: unknown) => logger.error({ err }, 'broker error'))
  broker.on('clientError', (client, err) => logger.debug({ clientId: client.id, err: err.message }, 'client error'))
  broker.on('connectionError', (_client, err) => logger.debug({ err: err.message }, 'connection error before CONNECT'))

  // persistent sessions seen offline since start, for $SYS clients/disconnected
  const persistentOffline = new Set<string>()
  broker.on('clientReady', client => {
    persistentOffline.delete(client.id)
  })
  broker.on('clientDisconnect', client => {
    if (!client.clean) persistentOffline.add(client.id)
  })

  // Messages published while Redis was away reached the nodes' message channel late or not at
  // all, but they are in each persistent session's queue in Redis: such sessions are asked to
  // reconnect, which replays the queue. Clean sessions have no queue to replay.
  cluster?.onRecovered(() => {
    let count = 0
    for (const client of connectedClients(broker)) {
      if (client.clean) continue
      count++
      client.close()
    }
    logger.warn({ persistentSessions: count }, 'Redis is back: persistent sessions reconnect to replay what was queued meanwhile')
  })

  const guard = new ConnectionGuard(config.limits, stats, logger)
  const listenerDeps: ListenerDeps = { guard, limits: config.limits, stats, logger, source: config.source, handle: createConnectionHandler(broker) }
  const listeners: Listener[] = []
  const sys = new SysTopics({
    broker, stats, guard, logger, version, now,
    intervalSeconds: config.sysInterval,
    disconnectedClients: () => persistentOffline.size
  })
  let admin: AdminServer | undefined

  const close = async (): Promise<void> => {
    sys.stop()
    // stop accepting first; a server's close completes only once its connections are gone
    const closing = Promise.all(listeners.map(l => l.close().catch(() => {})))
    await new Promise<void>(resolve => broker.close(() => resolve()))
    guard.destroyAll()
    await closing
    await admin?.close()
    await persistence?.destroy().catch((err: unknown) => logger.warn({ err }, 'closing persistence'))
    await cluster?.close().catch((err: unknown) => logger.warn({ err }, 'closing the Redis connections'))
  }

  try {
    for (const [index, l] of config.listeners.entries()) {
      const start = l.protocol === 'mqtt' ? startTcpListener : startWebSocketListener
      listeners.push(await start(l, `listeners[${index}]`, listenerDeps))
    }
    if (config.admin !== false) {
      const registry = createMetrics({ broker, stats, guard, listeners: () => config.listeners })
      admin = await startAdminServer(config.admin, {
        registry,
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

  const reload = async (): Promise<boolean> => {
    const reloadProblems = await access.load()
    if (reloadProblems.length > 0) {
      logger.error({ problems: reloadProblems }, 'reload refused: users and ACL unchanged')
      return false
    }
    for (const client of connectedClients(broker)) {
      const session = ctx.sessions.get(client)
      if (session === undefined) continue
      if (session.username !== undefined && access.hasPasswordFile && !access.hasUser(session.username)) {
        logger.info({ clientId: client.id, username: session.username }, 'user removed from the password file: disconnecting')
        client.close()
        continue
      }
      const username = access.hasPasswordFile ? session.username : undefined
      ctx.sessions.set(client, { username, access: access.rulesFor({ username, clientId: client.id }) })
    }
    let ok = true
    for (const l of listeners) {
      await l.reloadTls().catch((err: unknown) => {
        ok = false
        logger.error({ err: (err as Error).message, listener: l.config.name }, 'TLS certificate reload failed: keeping the previous certificate')
      })
    }
    logger.info({ users: access.userCount }, 'reloaded users, ACL and certificates')
    return ok
  }

  const ports = new Map(listeners.map(l => [l.config.name, l.port] as const))
  logger.info({ version, listeners: Object.fromEntries(ports) }, 'firehose broker started')
  return { aedes: broker, stats, listeners, ports, adminPort: admin?.port, reload, close }
}

export type { ListenerConfig }
