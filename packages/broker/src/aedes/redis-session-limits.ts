import type { Aedes } from 'aedes'
import { withTemplates, type PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'
import { editApplies, type SourceEdit } from './redis-persistence-module.js'
import type { SessionRecord, SessionStore } from './session-limits.js'

/** What this uses of the persistence's ioredis connection. */
export interface SessionDb {
  eval: (script: string, keys: number, ...args: Array<string | number>) => Promise<unknown>
  smembers: (key: string) => Promise<string[]>
  pipeline: (commands: string[][]) => { exec: () => Promise<Array<[Error | null, unknown]> | null> }
  set: (key: string, value: string, px: 'PX', ms: number, nx: 'NX') => Promise<'OK' | null>
}

/** What this wraps and calls of aedes-persistence-redis 12.0 (with qos2-published-once.ts' method). */
interface Persistence {
  outgoingEnqueueCombi: (subs: Array<{ clientId: string }>, packet: unknown) => Promise<unknown>
  firehoseEnqueueRecordEmit?: (subs: Array<{ clientId: string }>, ...rest: unknown[]) => Promise<unknown>
  cleanIncoming: (client: { id: string | null }) => Promise<unknown>
  cleanSubscriptions: (client: { id: string }) => Promise<unknown>
}

/** aedes-persistence-redis' keys (asyncPersistence.js): a client id is URI-encoded. */
const queueKey = (id: string): string => `outgoing:${encodeURIComponent(id)}`
const STORED_SESSIONS = 'clients'
/** Firehose's: a hash per persistent session, and the set of their ids */
const recordKey = (id: string): string => `firehose:session:${encodeURIComponent(id)}`
const RECORDS = 'firehose:sessions'
const SWEEP_LOCK = 'firehose:session-sweep'

/**
 * Lets one entry of a session's queue go: `packet:<broker>:<counter>` (a message not yet sent),
 * or `outgoing:<id>:<broker>:<counter>` (a QoS 2 message whose PUBREL is outstanding, a key of
 * its own). The message itself goes when no session has it queued any more (its offlineCount).
 */
const RELEASE = `local function release (entry)
  local message = entry
  if string.sub(entry, 1, 7) ~= 'packet:' then
    redis.call('del', entry)
    local broker, counter = string.match(entry, ':([^:]+):([^:]+)$')
    if broker == nil then return end
    message = 'packet:' .. broker .. ':' .. counter
  end
  if redis.call('decr', message .. ':offlineCount') <= 0 then redis.call('del', message, message .. ':offlineCount') end
end
`

/** KEYS: a session's queue. Every entry let go, then the queue. */
const RELEASE_QUEUE = `${RELEASE}for _, entry in ipairs(redis.call('lrange', KEYS[1], 0, -1)) do release(entry) end
return redis.call('del', KEYS[1])`

/** KEYS: a queue and its session's record, per session; ARGV: the limit. The oldest past it let go, for each session that is offline. */
const TRIM = `${RELEASE}local dropped = {}
for i = 1, #KEYS, 2 do
  local n = 0
  if redis.call('hexists', KEYS[i + 1], 'offlineSince') == 1 then
    local over = redis.call('llen', KEYS[i]) - tonumber(ARGV[1])
    if over > 0 then
      local entries = redis.call('lrange', KEYS[i], 0, over - 1)
      redis.call('ltrim', KEYS[i], over, -1)
      for _, entry in ipairs(entries) do release(entry) end
      n = #entries
    end
  end
  dropped[#dropped + 1] = n
end
return dropped`

/** KEYS: record, record set; ARGV: id, connection, node, user ('' for none). */
const CONNECTED = `redis.call('del', KEYS[1])
redis.call('hset', KEYS[1], 'conn', ARGV[2], 'node', ARGV[3])
if ARGV[4] ~= '' then redis.call('hset', KEYS[1], 'user', ARGV[4]) end
redis.call('sadd', KEYS[2], ARGV[1])`

/** KEYS: record; ARGV: connection, when. Offline only if no later connection (on another node) took the session. */
const DISCONNECTED = 'if redis.call("hget", KEYS[1], "conn") == ARGV[1] then redis.call("hset", KEYS[1], "offlineSince", ARGV[2]) end'

/** KEYS: record; ARGV: connection, when. A session its dead node left connected: offline from now, unless it connected again. */
const MARK_OFFLINE = 'if redis.call("hget", KEYS[1], "conn") == ARGV[1] and redis.call("hexists", KEYS[1], "offlineSince") == 0 then redis.call("hset", KEYS[1], "offlineSince", ARGV[2]) end'

/** KEYS: record, record set; ARGV: id, offlineSince seen. Claims an expired session for removal: 1 if it is still offline since then. */
const CLAIM = `if redis.call('hget', KEYS[1], 'offlineSince') == ARGV[2] then
  redis.call('del', KEYS[1])
  redis.call('srem', KEYS[2], ARGV[1])
  return 1
end
return 0`

/** KEYS: record, record set; ARGV: id, when. A session stored without a record gets one (legacy). */
const ADOPT = `if redis.call('exists', KEYS[1]) == 0 then
  redis.call('hset', KEYS[1], 'legacy', '1', 'offlineSince', ARGV[2])
  redis.call('sadd', KEYS[2], ARGV[1])
end`

/**
 * aedes-persistence-redis 12.0, removeSubscriptions: when a session's last subscription goes
 * (a clean CONNECT, an UNSUBSCRIBE of the last filter) its queue list is deleted, but not the
 * messages it names nor their counts: those stayed in Redis for good. Here the queue is let go
 * entry by entry, each message deleted when no other session has it queued.
 */
export const releaseQueueEdit: SourceEdit = {
  patch: 'redis-session-limits.ts',
  original: '      await this.#db.del(outgoingKey(client.id))',
  replacement: `      // Firehose, packages/broker/src/aedes/redis-session-limits.ts
      await this.#db.eval(${JSON.stringify(RELEASE_QUEUE)}, 1, outgoingKey(client.id))`
}

export interface RedisSessionOptions {
  /** this node's broker id */
  node: string
  heartbeatMs: number
  now?: () => number
}

/**
 * The session limits (session-limits.ts) on a cluster node. Written against
 * aedes-persistence-redis 12.0 (a session's queue is the list `outgoing:<id>` of message keys,
 * oldest first; each message `packet:<broker>:<counter>` with its count of sessions
 * `...:offlineCount`; QoS 2 records `incoming:<id>`; stored sessions in the set `clients`) and
 * Aedes 1.2 (`broker.brokers`: the nodes heard from, by heartbeat).
 *
 * A session's record is a hash in Redis (`firehose:session:<id>`: its connection — node and a
 * number —, owner, offline since), so every node knows whether a session is connected anywhere:
 * a disconnect marks it offline only if no later connection took it, and a session whose node
 * stopped heartbeating is offline from the sweep that notices. A queue is trimmed in one Lua
 * script that first looks at the record. The sweep runs on one node at a time (a lock that
 * lapses before the next sweep), and a session is removed only if its record still says it is
 * offline since the time the sweep read.
 *
 * A clean session's queue: aedes-persistence-redis deletes the list at the clean CONNECT (when
 * its subscriptions go); `releaseQueueEdit` lets its messages go with it.
 */
export function redisSessionStore (broker: Aedes, persistence: object, db: SessionDb, options: RedisSessionOptions): SessionStore {
  const p = persistence as Persistence
  const now = options.now ?? Date.now
  const started = now()
  const internals = brokerInternals(broker)
  let connection = 0
  const connections = new WeakMap<object, string>()
  /** what the last sweep read: each session's connection, to mark it offline only if it is still that one */
  const seen = new Map<string, { conn?: string, node?: string }>()

  const alive = (node: string | undefined): boolean => {
    if (node === undefined || node === options.node) return true
    // the nodes are known from their heartbeats: until a few have come, none is taken for dead
    if (now() - started < 4 * options.heartbeatMs) return true
    const heard = (internals as unknown as { brokers: Record<string, number> }).brokers[node]
    return heard !== undefined && heard + 3 * options.heartbeatMs >= now()
  }

  return {
    watchQueues: queued => {
      const enqueue = p.outgoingEnqueueCombi.bind(p)
      p.outgoingEnqueueCombi = async (subs, packet) => {
        const result = await enqueue(subs, packet)
        if (subs.length > 0) await queued(subs.map(sub => sub.clientId))
        return result
      }
      // a client's QoS 2 message is queued with its PUBLISH on the message channel (qos2-published-once.ts)
      const enqueueRecordEmit = p.firehoseEnqueueRecordEmit?.bind(p)
      if (enqueueRecordEmit !== undefined) {
        p.firehoseEnqueueRecordEmit = async (subs, ...rest) => {
          const result = await enqueueRecordEmit(subs, ...rest)
          if (subs.length > 0) await queued(subs.map(sub => sub.clientId))
          return result
        }
      }
    },
    trim: async (ids, max) => {
      const offline = [...new Set(ids)].filter(id => internals.clients[id] === undefined)
      if (offline.length === 0) return []
      const dropped = await db.eval(TRIM, 2 * offline.length, ...offline.flatMap(id => [queueKey(id), recordKey(id)]), max) as number[]
      return offline.map((id, i): [string, number] => [id, dropped[i] ?? 0]).filter(([, n]) => n > 0)
    },
    connected: async (client, user) => {
      const conn = `${options.node}/${++connection}`
      connections.set(client, conn)
      await db.eval(CONNECTED, 2, recordKey(client.id), RECORDS, client.id, conn, options.node, user ?? '')
    },
    disconnected: async (client, _user, at) => {
      const conn = connections.get(client)
      if (conn !== undefined) await db.eval(DISCONNECTED, 1, recordKey(client.id), conn, at)
    },
    records: async () => {
      seen.clear()
      const found: Array<[string, SessionRecord]> = []
      const ids = await db.smembers(RECORDS)
      // every record in one round trip
      const hashes = await db.pipeline(ids.map(id => ['hgetall', recordKey(id)])).exec() ?? []
      for (const [i, id] of ids.entries()) {
        const [err, value] = hashes[i] ?? [new Error('no reply')]
        if (err !== null) throw err
        const hash = value as Record<string, string>
        const offlineSince = Number(hash.offlineSince)
        seen.set(id, { ...(hash.conn === undefined ? {} : { conn: hash.conn }), ...(hash.node === undefined ? {} : { node: hash.node }) })
        found.push([id, {
          ...(hash.user === undefined ? {} : { user: hash.user }),
          ...(hash.offlineSince === undefined || !Number.isFinite(offlineSince) ? {} : { offlineSince }),
          ...(hash.legacy === '1' ? { legacy: true as const } : {})
        }])
      }
      return found
    },
    online: (id, rec) => internals.clients[id] !== undefined || (rec.offlineSince === undefined && alive(seen.get(id)?.node)),
    markOffline: async (id, _rec, at) => {
      const conn = seen.get(id)?.conn
      if (conn !== undefined) await db.eval(MARK_OFFLINE, 1, recordKey(id), conn, at)
    },
    remove: async (id, rec) => {
      if (await db.eval(CLAIM, 2, recordKey(id), RECORDS, id, String(rec.offlineSince)) !== 1) return false
      await p.cleanSubscriptions({ id })
      // a queue left without subscriptions too, and the QoS 2 records
      await db.eval(RELEASE_QUEUE, 1, queueKey(id))
      await p.cleanIncoming({ id })
      return true
    },
    adoptLegacy: async at => {
      for (const id of await db.smembers(STORED_SESSIONS)) {
        if (internals.clients[id] === undefined) await db.eval(ADOPT, 2, recordKey(id), RECORDS, id, at)
      }
    },
    mayExpire: async intervalMs => await db.set(SWEEP_LOCK, options.node, 'PX', Math.floor(intervalMs * 0.8), 'NX') === 'OK'
  }
}

/** For the tests: the keys a session's record is kept under. */
export const sessionRecordKey = recordKey

export const redisSessionLimitsContract: PatchContract = {
  patch: 'redis-session-limits.ts',
  package: 'aedes-persistence-redis',
  writtenAgainst: 'asyncPersistence.js (outgoingKey, incomingKey, packetKey, packetCountKey; the clients set; outgoingEnqueueCombi, removeSubscriptions, cleanIncoming)',
  sources: {
    'asyncPersistence.js': [
      "const CLIENTSKEY = 'clients'",
      "const OUTGOINGKEY = 'outgoing:'",
      "const INCOMINGKEY = 'incoming:'",
      "const PACKETKEY = 'packet:'",
      withTemplates('return `«OUTGOINGKEY}«encodeURIComponent(clientId)}`'),
      withTemplates('return `«INCOMINGKEY}«encodeURIComponent(clientId)}`'),
      withTemplates('return `«PACKETKEY}«brokerId}:«brokerCounter}:offlineCount`'),
      withTemplates('return `«outgoingKey(clientId)}:«brokerId}:«brokerCounter}`'),
      'await this.#db.rpush(listKey, pktKey)'
    ]
  },
  verify: ({ source }) => editApplies(releaseQueueEdit, source('aedes-persistence-redis', 'asyncPersistence.js'), 'removeSubscriptions (DEL of the queue list when the last subscription goes)')
}
