import { createRequire } from 'node:module'
import type { Logger } from 'pino'
import { openLevelStore } from '@firehose/runtime'
import type { BrokerConfig } from './config/types.js'
import { connectCluster, type ClusterBackends } from './cluster/redis-backends.js'

const require = createRequire(import.meta.url)

/** The persistence object Aedes 1.x expects (async methods, async setup()). */
export interface AedesPersistence {
  setup: (broker: unknown) => Promise<void>
  destroy: () => Promise<void>
  [method: string]: unknown
}

/** Where a broker keeps retained messages, sessions and wills: nowhere (memory), LevelDB, or Redis. */
export interface BrokerStore {
  persistence: AedesPersistence | undefined
  cluster: ClusterBackends | undefined
  close: (logger: Logger) => Promise<void>
}

export async function openStore (config: BrokerConfig, logger: Logger): Promise<BrokerStore> {
  let persistence: AedesPersistence | undefined
  let cluster: ClusterBackends | undefined
  if (config.cluster !== false) {
    cluster = await connectCluster(config.cluster, logger, config.source)
    persistence = cluster.persistence
  } else if (config.persistence !== false) {
    persistence = await openLevelPersistence(config.persistence.dir, config.source)
  }
  return {
    persistence,
    cluster,
    close: async logger => {
      await persistence?.destroy().catch((err: unknown) => logger.warn({ err }, 'closing persistence'))
      await cluster?.close().catch((err: unknown) => logger.warn({ err }, 'closing the Redis connections'))
    }
  }
}

/**
 * Retained messages, persistent sessions, their queued QoS 1/2 messages and wills, in an
 * embedded LevelDB under `dir`: no external server. aedes-persistence-level's main export
 * wraps the store in the 0.x callback API; Aedes 1.x wants the async class directly.
 */
export async function openLevelPersistence (dir: string, source: string): Promise<AedesPersistence> {
  const db = await openLevelStore<Buffer>(dir, 'buffer', { key: 'persistence.dir', user: 'broker', source })
  const AsyncLevelPersistence = require('aedes-persistence-level/asyncPersistence.js') as new (db: unknown) => AedesPersistence
  return new AsyncLevelPersistence(db)
}
