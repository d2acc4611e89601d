import type { Aedes, Client } from 'aedes'
import type { PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'
import { clientIdOf, clientIdsUnder, clientRange, prefixRange } from './level-keys.js'

/** What this uses of the session store's classic-level database. */
export interface LevelSessionDb {
  keys: (options: { gt?: string, gte?: string, lt: string, limit?: number }) => { all: () => Promise<string[]> }
  get: (key: string) => Promise<Buffer | undefined>
  put: (key: string, value: Buffer) => Promise<void>
  batch: (ops: Array<{ type: 'del', key: string }>) => Promise<void>
  clear: (range: { gte: string, lt: string }) => Promise<void>
}

/** What this wraps and calls of the (tidied) aedes-persistence-level 9.2 instance. */
interface Persistence {
  outgoingEnqueue: (sub: { clientId: string }, packet: unknown) => Promise<unknown>
  outgoingClearMessageId: (client: unknown, packet: unknown) => Promise<unknown>
  cleanSubscriptions: (client: { id: string }) => Promise<unknown>
  delWill: (client: { id: string }) => Promise<unknown>
}

export interface SessionLimitsOptions {
  /** per offline persistent session; 0: no limit */
  maxQueuedMessages: number
  /** ms an offline persistent session is kept: an anonymous client's, a user's; false: forever */
  expiryMs: { anonymous: number | false, user: number | false }
  /** who a connected client is (its user name), for a session it makes */
  userOf: (client: Client) => string | undefined
  deleted: (keys: number) => void
  log: (level: 'info' | 'debug', event: string, fields: Record<string, unknown>, message: string) => void
  now?: () => number
  /** where the counts go (the broker's stats) */
  stats: SessionLimitStats
}

export interface SessionLimitStats {
  /** queued messages dropped, oldest first, from offline sessions over maxQueuedMessages */
  queuedDropped: number
  /** offline persistent sessions removed after their expiry */
  sessionsExpired: number
}

/** Who made a persistent session, and since when it is offline; `legacy`: found without a record (an older store). */
interface SessionRecord { user?: string, offlineSince?: number, legacy?: true }

const RECORD = 'firehose:session:'
const recordKey = (id: string): string => `${RECORD}${encodeURIComponent(id)}`

/**
 * Written against aedes-persistence-level 9.2 (asyncPersistence.js: a session's queue is the
 * keys under `outgoing:<id>:`, oldest first; `outgoing-id:`, `incoming:`, `subscriptions:` and
 * `will:` keys beside it) and Aedes 1.2 (`clientReady`, `clientDisconnect`, `broker.clients`).
 * Aedes keeps everything queued for an offline persistent session, forever: an anonymous client
 * with clean session 0 and a QoS 1 subscription to `#` had every message stored for it.
 *
 * - **At most `maxQueuedMessages` per offline session**: past it, each message queued drops the
 *   oldest (counted). A connected session is not capped: it is being delivered to, and one that
 *   stops reading is dropped by limits.maxQueuedBytes.
 * - **Expiry**: who made each persistent session, and since when it is offline, is kept in the
 *   store (`firehose:session:<id>`); an offline session older than its owner's expiry (anonymous
 *   or user) is removed — subscriptions, queue, QoS 2 records, will — and counted. A session
 *   found without a record (a store from before this) is treated as a user's.
 */
export async function limitLevelSessions (broker: Aedes, persistence: object, db: LevelSessionDb, options: SessionLimitsOptions): Promise<{ close: () => void }> {
  const p = persistence as Persistence
  const now = options.now ?? Date.now
  const { stats } = options
  const online = (id: string): boolean => brokerInternals(broker).clients[id] !== undefined
  const counts = await queuedPerClient(db)
  /** the last key dropped per client: the next oldest is after it (the seek need not step over the tombstones) */
  const dropped = new Map<string, string>()

  const enqueue = p.outgoingEnqueue.bind(p)
  p.outgoingEnqueue = async (sub, packet) => {
    const id = sub.clientId
    const n = (counts.get(id) ?? 0) + 1
    counts.set(id, n)
    const result = await enqueue(sub, packet)
    if (options.maxQueuedMessages > 0 && n > options.maxQueuedMessages && !online(id)) await dropOldest(id, n - options.maxQueuedMessages)
    return result
  }
  const clear = p.outgoingClearMessageId.bind(p)
  p.outgoingClearMessageId = async (client, packet) => {
    const result = await clear(client, packet)
    const id = (client as { id: string | null }).id
    if (result !== undefined && id !== null) counts.set(id, Math.max(0, (counts.get(id) ?? 1) - 1))
    return result
  }

  const dropOldest = async (id: string, count: number): Promise<void> => {
    const { gte, lt } = clientRange('outgoing:', id)
    const after = dropped.get(id)
    const keys = await db.keys({ ...(after === undefined ? { gte } : { gt: after }), lt, limit: count }).all()
    if (keys.length === 0) return
    await db.batch(keys.map(key => ({ type: 'del' as const, key })))
    dropped.set(id, keys[keys.length - 1]!)
    counts.set(id, Math.max(0, (counts.get(id) ?? keys.length) - keys.length))
    stats.queuedDropped += keys.length
    options.deleted(keys.length)
    options.log('debug', 'session.queue-capped', { clientId: id, dropped: keys.length, max: options.maxQueuedMessages }, 'offline session over limits.maxQueuedMessages: oldest messages dropped')
  }

  const record = async (id: string, value: SessionRecord): Promise<void> => { await db.put(recordKey(id), Buffer.from(JSON.stringify(value))) }
  broker.on('clientReady', client => {
    if (client.clean) return
    dropped.delete(client.id)
    const user = options.userOf(client)
    record(client.id, user === undefined ? {} : { user }).catch(() => {})
  })
  broker.on('clientDisconnect', client => {
    if (client.clean) return
    const user = options.userOf(client)
    record(client.id, { ...(user === undefined ? {} : { user }), offlineSince: now() }).catch(() => {})
  })

  const expire = async (id: string, rec: SessionRecord): Promise<void> => {
    await p.cleanSubscriptions({ id })
    for (const prefix of ['outgoing:', 'outgoing-id:', 'incoming:']) await db.clear(clientRange(prefix, id))
    await p.delWill({ id })
    await db.batch([{ type: 'del', key: recordKey(id) }])
    counts.delete(id)
    dropped.delete(id)
    stats.sessionsExpired++
    options.deleted(1)
    options.log('info', 'session.expired', { clientId: id, user: rec.user, offlineSinceMs: rec.offlineSince }, 'offline persistent session expired: removed')
  }
  const sweep = async (): Promise<void> => {
    for (const key of await db.keys(prefixRange(RECORD)).all()) {
      const id = decodeURIComponent(key.slice(RECORD.length))
      if (online(id)) continue
      const rec = JSON.parse((await db.get(key))?.toString() ?? '{}') as SessionRecord
      // online when the broker last stopped (or crashed): offline from this start
      if (rec.offlineSince === undefined) {
        await record(id, { ...rec, offlineSince: now() })
        continue
      }
      // a session of unknown owner (legacy) gets a user's expiry
      const expiry = rec.user !== undefined || rec.legacy === true ? options.expiryMs.user : options.expiryMs.anonymous
      if (expiry !== false && now() - rec.offlineSince > expiry) await expire(id, rec)
    }
  }

  // sessions from a store without records: their owner is unknown, so they get a user's expiry
  for (const id of await clientIdsUnder(db, 'subscriptions:')) {
    if (await db.get(recordKey(id)) === undefined) await record(id, { legacy: true, offlineSince: now() })
  }
  await sweep()
  let sweeping = false
  const timer = setInterval(() => {
    if (sweeping) return
    sweeping = true
    sweep().catch((err: Error) => { options.log('info', 'session.sweep-failed', { err: err.message }, 'looking for expired sessions failed (tried again later)') }).finally(() => { sweeping = false })
  }, sweepMs(options.expiryMs))
  timer.unref()
  return { close: () => { clearInterval(timer) } }
}

/** Queued messages per client id (the keys under outgoing:). */
async function queuedPerClient (db: LevelSessionDb): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (const key of await db.keys(prefixRange('outgoing:')).all()) {
    const id = clientIdOf(key, 'outgoing:')
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  return counts
}

/** ms between looks for expired sessions: a quarter of the shorter expiry, between 1 s and a minute. */
function sweepMs (expiryMs: SessionLimitsOptions['expiryMs']): number {
  const shorter = Math.min(...[expiryMs.anonymous, expiryMs.user].map(ms => ms === false ? Infinity : ms))
  return Math.min(60_000, Math.max(1000, shorter / 4))
}

export const levelSessionLimitsContract: PatchContract = {
  patch: 'level-session-limits.ts',
  package: 'aedes-persistence-level',
  writtenAgainst: 'asyncPersistence.js (outgoingKey: outgoing:<id>:<brokerId>:<counter>, oldest first within a run; outgoing-id:, incoming:, subscriptions: and will: keys; outgoingEnqueue, outgoingClearMessageId, cleanSubscriptions, delWill)',
  sources: {
    'asyncPersistence.js': [
      "const OUTGOINGID = 'outgoing-id:'",
      'function outgoingKey (clientId, brokerId, brokerCounter) {',
      'async outgoingClearMessageId (client, packet) {',
      'async delWill (client) {'
    ]
  }
}
