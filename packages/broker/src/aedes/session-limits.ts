import type { Aedes, Client } from 'aedes'
import type { PatchContract } from './contract.js'

/**
 * Who made a persistent session, and since when it is offline (absent: connected, or connected
 * when its broker stopped or died); `legacy`: found without a record (a store from before this).
 */
export interface SessionRecord { user?: string, offlineSince?: number, legacy?: true }

/**
 * What the session limits need of a session store (LevelDB, Redis, memory). The store knows
 * where a session's queue is and how to drop from it; the policy (when, how many, which
 * expiry) is in limitSessions.
 */
export interface SessionStore {
  /** calls `queued` with the sessions a message was just queued for (the store knows which of its methods queue) */
  watchQueues: (queued: (clientIds: readonly string[]) => Promise<void>) => void
  /** drops the oldest of each offline session's queued messages past `max`: [session, how many] for those it dropped from (none for a connected session) */
  trim: (clientIds: readonly string[], max: number) => Promise<Array<[string, number]>>
  /** a persistent session's client connected / went away (`at`), made by `user` */
  connected: (client: Client, user: string | undefined) => Promise<void>
  disconnected: (client: Client, user: string | undefined, at: number) => Promise<void>
  /** every session's record, for the sweep */
  records: () => Promise<Array<[string, SessionRecord]>>
  /** whether a session is connected (on any node of a cluster), as far as this node can tell */
  online: (clientId: string, record: SessionRecord) => boolean
  /** a session without offlineSince that is not connected (its broker stopped or died): offline from `at` */
  markOffline: (clientId: string, record: SessionRecord, at: number) => Promise<void>
  /** removes the session — subscriptions, queue, QoS 2 records, will, record — if its record is still `record`; whether it did */
  remove: (clientId: string, record: SessionRecord) => Promise<boolean>
  /** gives sessions stored without a record one (`legacy`, offline from `at`) */
  adoptLegacy: (at: number) => Promise<void>
  /** whether this node should sweep now, sweeping every `intervalMs` (one node of a cluster at a time) */
  mayExpire?: (intervalMs: number) => Promise<boolean>
}

export interface SessionLimitsOptions {
  /** per offline persistent session; 0: no limit */
  maxQueuedMessages: number
  /** ms an offline persistent session is kept: an anonymous client's, a user's; false: forever */
  expiryMs: { anonymous: number | false, user: number | false }
  /** who a connected client is (its user name), for a session it makes */
  userOf: (client: Client) => string | undefined
  log: (level: 'info' | 'debug' | 'warn', event: string, fields: Record<string, unknown>, message: string) => void
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

/**
 * Aedes keeps everything queued for an offline persistent session, forever: an anonymous client
 * with clean session 0 and a QoS 1 subscription to `#` had every message stored for it.
 *
 * - **At most `maxQueuedMessages` per offline session**: past it, each message queued drops the
 *   oldest (counted). A connected session is not capped: it is being delivered to, and one that
 *   stops reading is dropped by limits.maxQueuedBytes.
 * - **Expiry**: who made each persistent session, and since when it is offline, is kept in the
 *   store; an offline session older than its owner's expiry (anonymous or user) is removed and
 *   counted. A session found without a record (a store from before this) is treated as a user's.
 */
export async function limitSessions (broker: Aedes, store: SessionStore, options: SessionLimitsOptions): Promise<{ close: () => void }> {
  const now = options.now ?? Date.now
  const { stats, maxQueuedMessages: max } = options

  if (max > 0) {
    store.watchQueues(async ids => {
      for (const [id, dropped] of await store.trim(ids, max)) {
        stats.queuedDropped += dropped
        options.log('debug', 'session.queue-capped', { clientId: id, dropped, max }, 'offline session over limits.maxQueuedMessages: oldest messages dropped')
      }
    })
  }

  const recordFailed = (err: Error): void => { options.log('warn', 'session.record-failed', { err: err.message }, 'writing a session record failed') }
  broker.on('client', client => {
    if (!client.clean) store.connected(client, options.userOf(client)).catch(recordFailed)
  })
  broker.on('clientDisconnect', client => {
    if (!client.clean) store.disconnected(client, options.userOf(client), now()).catch(recordFailed)
  })

  const intervalMs = sweepMs(options.expiryMs)
  const sweep = async (): Promise<void> => {
    if (store.mayExpire !== undefined && !await store.mayExpire(intervalMs)) return
    for (const [id, rec] of await store.records()) {
      if (store.online(id, rec)) continue
      // connected when its broker last stopped (or died): offline from now
      if (rec.offlineSince === undefined) {
        await store.markOffline(id, rec, now())
        continue
      }
      // a session of unknown owner (legacy) gets a user's expiry
      const expiry = rec.user !== undefined || rec.legacy === true ? options.expiryMs.user : options.expiryMs.anonymous
      if (expiry === false || now() - rec.offlineSince <= expiry) continue
      if (!await store.remove(id, rec)) continue
      stats.sessionsExpired++
      options.log('info', 'session.expired', { clientId: id, user: rec.user, offlineSinceMs: rec.offlineSince }, 'offline persistent session expired: removed')
    }
  }

  await store.adoptLegacy(now())
  await sweep()
  let sweeping = false
  const timer = setInterval(() => {
    if (sweeping) return
    sweeping = true
    sweep().catch((err: Error) => { options.log('warn', 'session.sweep-failed', { err: err.message }, 'looking for expired sessions failed (tried again later)') }).finally(() => { sweeping = false })
  }, intervalMs)
  timer.unref()
  return { close: () => { clearInterval(timer) } }
}

/** ms between looks for expired sessions: a quarter of the shorter expiry, between 1 s and a minute. */
function sweepMs (expiryMs: SessionLimitsOptions['expiryMs']): number {
  const shorter = Math.min(...[expiryMs.anonymous, expiryMs.user].map(ms => ms === false ? Infinity : ms))
  return Math.min(60_000, Math.max(1000, shorter / 4))
}

/** A record as stored (JSON), with nothing but its known fields. */
export function parseRecord (text: string | undefined): SessionRecord {
  let value: Record<string, unknown> = {}
  try {
    const parsed: unknown = JSON.parse(text ?? '{}')
    if (typeof parsed === 'object' && parsed !== null) value = parsed as Record<string, unknown>
  } catch {
    // a damaged record: as one without an owner, offline from the next sweep
  }
  return {
    ...(typeof value.user === 'string' ? { user: value.user } : {}),
    ...(typeof value.offlineSince === 'number' ? { offlineSince: value.offlineSince } : {}),
    ...(value.legacy === true ? { legacy: true as const } : {})
  }
}

export const sessionLimitsContract: PatchContract = {
  patch: 'session-limits.ts',
  package: 'aedes',
  writtenAgainst: 'aedes.js (_finishRegisterClient emits `client` once the client is in broker.clients, after a takeover closed the previous one; unregisterClient emits `clientDisconnect`), lib/handlers/connect.js and lib/client.js (cleanIncoming for a clean session, where the stores drop its queue), aedes.js enqueueOffline (outgoingEnqueueCombi)',
  sources: {
    'aedes.js': [
      "this.clients[client.id] = client\n    this.emit('client', client)",
      "this.deleteClient(client.id)\n    this.emit('clientDisconnect', client)",
      'this.clients[client.id].close(function closeClient () {\n        that._finishRegisterClient(client)',
      'broker.persistence.outgoingEnqueueCombi(subs, packet)'
    ],
    'lib/handlers/connect.js': ["typeof persistence.cleanIncoming === 'function' && persistence.cleanIncoming(client)"],
    'lib/client.js': ["if (that.clean && typeof persistence?.cleanIncoming === 'function') {\n        persistence.cleanIncoming(that)"]
  }
}
