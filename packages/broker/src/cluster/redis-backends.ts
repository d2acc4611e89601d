import { createRequire } from 'node:module'
import { randomBytes } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import { readConfiguredFile } from '@firehose/runtime'
import { enqueueRecordEmitEdit } from '../aedes/qos2-published-once.js'
import { atomicPubrelEdit } from '../aedes/redis-atomic-pubrel.js'
import { oneWillPerCluster } from '../aedes/one-will-per-cluster.js'
import { releaseQueueEdit } from '../aedes/redis-session-limits.js'
import { loadRedisPersistence } from '../aedes/redis-persistence-module.js'
import type { ClusterConfig } from '../config/types.js'
import type { AedesPersistence } from '../store.js'
import { keepSysRetainedLocal } from './local-sys-retained.js'

const require = createRequire(import.meta.url)

export interface ClusterBackends {
  /** this node's broker id: its name and a per-run suffix, so a restarted node's old wills are seen as a dead node's */
  id: string
  /** mqemitter-redis: messages between the nodes */
  mq: unknown
  /** aedes-persistence-redis: subscriptions, retained messages, sessions, queued messages, wills */
  persistence: AedesPersistence
  /** the journal's Redis stream: commands on the persistence's connection, a connection of its own to follow it */
  journal: { db: Redis, tail: Redis }
  /** called once every connection is back after a Redis outage (and its subscriptions restored) */
  onRecovered: (listener: () => void) => void
  close: () => Promise<void>
}

/**
 * Connects one cluster node to Redis. Four connections: mqemitter-redis's publisher and
 * subscriber, the persistence's (also the journal's), and one for following the journal. While Redis is away ioredis keeps reconnecting and holds
 * commands until it is back (maxRetriesPerRequest: null), so a Redis restart delays
 * acknowledgements rather than losing messages; the node itself keeps running.
 */
export async function connectCluster (cluster: ClusterConfig, logger: Logger, source: string): Promise<ClusterBackends> {
  // without the fix a node that dies can drop a QoS 2 message from a subscriber's queue; a
  // session's queue let go without its messages left them in Redis for good
  const AsyncRedisPersistence = loadRedisPersistence([atomicPubrelEdit, enqueueRecordEmitEdit, releaseQueueEdit])
  const password = cluster.passwordFile === undefined
    ? undefined
    : (await readConfiguredFile(cluster.passwordFile, 'cluster.passwordFile', source)).toString('utf8').trim()
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    retryStrategy: attempt => Math.min(100 * 2 ** Math.min(attempt, 5), 2000),
    lazyConnect: true,
    ...(password === undefined ? {} : { password })
  }
  const where = redactedUrl(cluster.redis)
  const down = new Set<string>()
  let outage = false
  const recovered: Array<() => void> = []
  const connections = ['mq-publish', 'mq-subscribe', 'persistence', 'journal-tail'].map(role => {
    const redis = new Redis(cluster.redis, { ...options, connectionName: `firehose-${cluster.node}-${role}` })
    // ioredis emits 'error' on every failed reconnection: one line per outage, not one per attempt
    redis.on('error', (err: Error) => {
      if (!down.has(role)) logger.error({ event: 'cluster.redis-lost', redis: where, role, err: err.message }, 'Redis connection lost: holding messages until it is back')
      down.add(role)
      outage = true
    })
    redis.on('ready', () => {
      if (!down.delete(role)) return
      logger.info({ event: 'cluster.redis-back', redis: where, role }, 'Redis connection back')
      if (down.size > 0 || !outage) return
      outage = false
      // ioredis re-subscribes the message channel once it is ready: leave it a moment
      setTimeout(() => { if (down.size === 0) recovered.forEach(listener => listener()) }, 500).unref()
    })
    return redis
  })
  const [pubConn, subConn, db, tail] = connections as [Redis, Redis, Redis, Redis]
  try {
    await Promise.all(connections.map(async c => await c.connect()))
  } catch (err) {
    connections.forEach(c => c.disconnect())
    // not a configuration error (exit 2 stops systemd restarting it): Redis may be starting too
    throw new Error(`cluster.redis: cannot connect to ${where}: ${(err as Error).message}`)
  }

  const MQEmitterRedis = require('mqemitter-redis') as (opts: object) => { close: (cb: () => void) => void, state: NodeJS.EventEmitter }
  const mq = MQEmitterRedis({ pubConn, subConn })
  mq.state.on('error', (err: Error) => logger.warn({ err: err.message }, 'Redis message channel error'))
  const persistence = keepSysRetainedLocal(new AsyncRedisPersistence({ conn: db }))
  const id = `${cluster.node}-${randomBytes(4).toString('hex')}`
  // a dead node's wills: published by one surviving node, not by each (aedes/one-will-per-cluster.ts)
  oneWillPerCluster(persistence, db, id, 8 * cluster.heartbeatInterval * 1000)
  logger.info({ event: 'cluster.connected', redis: where, node: cluster.node, brokerId: id }, 'cluster node connected to Redis')

  return {
    id,
    mq,
    persistence,
    journal: { db, tail },
    onRecovered: listener => { recovered.push(listener) },
    close: async () => {
      await new Promise<void>(resolve => mq.close(resolve))
      connections.forEach(c => c.disconnect())
    }
  }
}

/** The URL without its password, for logs and messages. */
export function redactedUrl (url: string): string {
  return url.replace(/^(rediss?:\/\/)([^@/]*@)/, (_m, scheme: string, auth: string) => `${scheme}${auth.includes(':') ? auth.slice(0, auth.indexOf(':')) + ':***@' : '***@'}`)
}
