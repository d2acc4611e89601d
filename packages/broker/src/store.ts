import { createRequire } from 'node:module'
import type { Logger } from 'pino'
import { ConfigError, openLevelStore } from '@firehose/runtime'
import type { Aedes } from 'aedes'
import { levelSessionStore, type LevelSessionDb } from './aedes/level-session-limits.js'
import { memorySessionStore, openMemoryPersistence } from './aedes/memory-session-limits.js'
import { redisSessionStore } from './aedes/redis-session-limits.js'
import type { SessionStore } from './aedes/session-limits.js'
import { tidyLevelStore, type TidyStats } from './aedes/tidy-level-store.js'
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
  /** a single broker's id for this run, when its store outlives it (LevelDB); else Aedes picks one */
  brokerId: string | undefined
  cluster: ClusterBackends | undefined
  /** the LevelDB store's upkeep (compactions), when it is one */
  tidy: TidyStats | undefined
  /** what Aedes is given: `persistence`, or (`persistence: false`) its in-memory store, patched */
  aedesPersistence: AedesPersistence
  /** the persistent sessions' records and queues, for the session limits */
  sessionStore: (broker: Aedes) => Promise<SessionStore>
  close: (logger: Logger) => Promise<void>
}

export async function openStore (config: BrokerConfig, logger: Logger): Promise<BrokerStore> {
  let persistence: AedesPersistence | undefined
  let cluster: ClusterBackends | undefined
  let brokerId: string | undefined
  let tidy: TidyStats | undefined
  let sessionStore: BrokerStore['sessionStore'] | undefined
  if (config.cluster !== false) {
    const node = cluster = await connectCluster(config.cluster, logger, config.source)
    persistence = cluster.persistence
    const options = { node: node.id, heartbeatMs: config.cluster.heartbeatInterval * 1000 }
    sessionStore = async broker => redisSessionStore(broker, node.persistence, node.journal.db, options)
  } else if (config.persistence !== false) {
    const level = await openLevelSessionStore(config.persistence.dir, config.source, (event, fields) => { logger.debug({ event, ...fields }, 'session store upkeep') })
    ;({ persistence, brokerId, tidy } = level)
    sessionStore = async broker => await levelSessionStore(broker, level.persistence, level.db, level.tidy.deleted)
  }
  const memory = persistence === undefined ? openMemoryPersistence() : undefined
  return {
    persistence,
    aedesPersistence: persistence ?? memory!,
    sessionStore: sessionStore ?? (async broker => memorySessionStore(broker, memory!)),
    brokerId,
    cluster,
    tidy,
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
  return (await openLevelSessionStore(dir, source)).persistence
}

/** The store's key for the number of runs so far; outside aedes-persistence-level's prefixes. */
const RUNS_KEY = 'firehose:runs'

/**
 * The LevelDB persistence and the broker id of this run: `run-` and the run's number, counted
 * in the store. aedes-persistence-level orders a session's queue by key — broker id, then
 * counter — so the ids of successive runs must sort in run order: with Aedes' default (a
 * random UUID per start), messages queued before a restart were replayed after later ones
 * half of the time. The count is written synchronously: a crash must not let two runs share
 * an id, or the second one's messages would overwrite the first one's still queued. (A store
 * written by a version that used UUIDs replays those first: digits and a-f sort before `r`.)
 */
export async function openLevelSessionStore (dir: string, source: string, log: (event: string, fields: Record<string, unknown>) => void = () => {}): Promise<{ persistence: AedesPersistence, brokerId: string, tidy: TidyStats, db: LevelSessionDb }> {
  const db = await openLevelStore<Buffer>(dir, 'buffer', { key: 'persistence.dir', user: 'broker', source })
  const before = await db.get(RUNS_KEY)
  const run = (before === undefined ? 0 : Number(before.toString())) + 1
  if (!Number.isSafeInteger(run)) throw new ConfigError([`persistence.dir: ${dir} holds a run count that is not a number (key ${RUNS_KEY})`], source)
  await db.put(RUNS_KEY, Buffer.from(String(run)), { sync: true })
  const AsyncLevelPersistence = require('aedes-persistence-level/asyncPersistence.js') as new (db: unknown) => AedesPersistence
  const persistence = new AsyncLevelPersistence(db)
  // range operations that do not slow down as deleted keys pile up (aedes/tidy-level-store.ts)
  const tidy = await tidyLevelStore(persistence, db, { log })
  return { persistence, brokerId: `run-${String(run).padStart(12, '0')}`, tidy, db: db as unknown as LevelSessionDb }
}
