import type { Aedes } from 'aedes'
import { withTemplates, type PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'
import { clientIdOf, clientIdsUnder, clientRange, prefixRange } from './level-keys.js'
import { parseRecord, type SessionRecord, type SessionStore } from './session-limits.js'

/** What this uses of the session store's classic-level database. */
export interface LevelSessionDb {
  keys: (options: { gt?: string, gte?: string, lt: string, limit?: number }) => { all: () => Promise<string[]> }
  iterator: (options: { gte: string, lt: string }) => { all: () => Promise<Array<[string, Buffer]>> }
  get: (key: string) => Promise<Buffer | undefined>
  put: (key: string, value: Buffer) => Promise<void>
  batch: (ops: Array<{ type: 'del', key: string }>) => Promise<void>
  clear: (range: { gte: string, lt: string }) => Promise<void>
}

/** What this wraps and calls of the (tidied) aedes-persistence-level 9.2 instance. */
interface Persistence {
  outgoingEnqueue: (sub: { clientId: string }, packet: unknown) => Promise<unknown>
  outgoingClearMessageId: (client: unknown, packet: unknown) => Promise<unknown>
  cleanIncoming: (client: { id: string | null }) => Promise<unknown>
  cleanSubscriptions: (client: { id: string }) => Promise<unknown>
  delWill: (client: { id: string }) => Promise<unknown>
}

const RECORD = 'firehose:session:'
const recordKey = (id: string): string => `${RECORD}${encodeURIComponent(id)}`
/** a session's queue: its messages, and the packet ids of those being delivered */
const QUEUE_PREFIXES = ['outgoing:', 'outgoing-id:']

/**
 * The session limits (session-limits.ts) on the LevelDB store. Written against
 * aedes-persistence-level 9.2 (asyncPersistence.js: a session's queue is the keys under
 * `outgoing:<id>:`, oldest first; `outgoing-id:`, `incoming:`, `subscriptions:` and `will:` keys
 * beside it) and Aedes 1.2 (`broker.clients`; lib/handlers/connect.js and lib/client.js call
 * `cleanIncoming` for a clean session, at its CONNECT after the takeover and at its close).
 *
 * Records are `firehose:session:<id>` keys. Queue lengths are counted in memory (from the keys
 * at start, then as messages are queued and acknowledged), so a message queued costs no read.
 *
 * Also a fix: a clean session discards the previous session's queue [MQTT-3.1.2-6]. Aedes
 * dropped it lazily, one message at a time while "delivering" it to the clean client; a client
 * that went away within milliseconds left the rest, which the next persistent session under
 * that id received. Here `cleanIncoming` drops the whole queue at once.
 */
export async function levelSessionStore (broker: Aedes, persistence: object, db: LevelSessionDb, deleted: (keys: number) => void): Promise<SessionStore> {
  const p = persistence as Persistence
  const clients = (): Record<string, unknown> => brokerInternals(broker).clients
  const counts = await queuedPerClient(db)
  /**
   * The keys of an offline session's queue, oldest first, once it has first gone over the limit:
   * read once, then kept as messages are queued, so each message past the limit drops the oldest
   * with one keyed delete instead of an iterator (a seek per message cost two thirds of the rate).
   */
  const offlineQueues = new Map<string, string[]>()
  /** trims of one session, one after the other (messages are queued for it concurrently) */
  const trims = new Map<string, Promise<number>>()

  let watcher: ((clientIds: readonly string[]) => Promise<void>) | undefined
  // outgoingEnqueueCombi goes through outgoingEnqueue, once per subscriber
  const enqueue = p.outgoingEnqueue.bind(p)
  p.outgoingEnqueue = async (sub, packet) => {
    counts.set(sub.clientId, (counts.get(sub.clientId) ?? 0) + 1)
    const queue = offlineQueues.get(sub.clientId)
    if (queue !== undefined) insertInOrder(queue, outgoingKey(sub.clientId, packet as QueuedPacket))
    const result = await enqueue(sub, packet)
    await watcher?.([sub.clientId])
    return result
  }
  const clear = p.outgoingClearMessageId.bind(p)
  p.outgoingClearMessageId = async (client, packet) => {
    const result = await clear(client, packet)
    const id = (client as { id: string | null }).id
    if (result !== undefined && id !== null) {
      // none left: a clean session under this id has no queue to discard (and makes no range operation)
      const left = (counts.get(id) ?? 1) - 1
      if (left > 0) counts.set(id, left)
      else counts.delete(id)
    }
    return result
  }
  const clearQueue = async (id: string): Promise<void> => {
    for (const prefix of QUEUE_PREFIXES) await db.clear(clientRange(prefix, id))
    deleted(2 * (counts.get(id) ?? 0))
    counts.delete(id)
    offlineQueues.delete(id)
  }
  const cleanIncoming = p.cleanIncoming.bind(p)
  p.cleanIncoming = async client => {
    await cleanIncoming(client)
    // only an id with messages queued has a queue to discard (a clean client makes no range operation)
    if (client.id !== null && counts.has(client.id)) await clearQueue(client.id)
  }
  /** messages queued past `max` for a session that is offline; 0 for a connected one */
  const excess = (id: string, max: number): number => clients()[id] === undefined ? (counts.get(id) ?? 0) - max : 0
  /** the keys to delete gathered over one turn of the event loop: one batch for every session a message was queued for */
  let pending: { keys: string[], written: Promise<void> } | undefined
  const deleteKeys = async (keys: string[]): Promise<void> => {
    if (pending === undefined) {
      const batch: string[] = []
      pending = {
        keys: batch,
        written: new Promise<void>(resolve => setImmediate(resolve)).then(async () => {
          pending = undefined
          await db.batch(batch.map(key => ({ type: 'del' as const, key })))
        })
      }
    }
    pending.keys.push(...keys)
    await pending.written
  }
  const dropOldest = async (id: string, max: number): Promise<number> => {
    const over = excess(id, max)
    if (over <= 0) return 0
    let queue = offlineQueues.get(id)
    if (queue === undefined) {
      // keys queued while the stored ones are read go here meanwhile
      const meanwhile: string[] = []
      offlineQueues.set(id, meanwhile)
      const stored = await db.keys(clientRange('outgoing:', id)).all()
      queue = [...new Set([...stored, ...meanwhile])].sort()
      offlineQueues.set(id, queue)
    }
    const keys = queue.splice(0, over)
    if (keys.length === 0) return 0
    await deleteKeys(keys)
    counts.set(id, Math.max(0, (counts.get(id) ?? keys.length) - keys.length))
    deleted(keys.length)
    return keys.length
  }
  const record = async (id: string, value: SessionRecord): Promise<void> => { await db.put(recordKey(id), Buffer.from(JSON.stringify(value))) }

  return {
    watchQueues: queued => { watcher = queued },
    trim: async (ids, max) => {
      const trimmed: Array<[string, number]> = []
      for (const id of ids) {
        // looked at before queueing behind the session's other trims: most messages need none
        if (excess(id, max) <= 0) continue
        const trim = (trims.get(id) ?? Promise.resolve(0)).catch(() => 0).then(async () => await dropOldest(id, max))
        trims.set(id, trim)
        const dropped = await trim
        if (trims.get(id) === trim) trims.delete(id)
        if (dropped > 0) trimmed.push([id, dropped])
      }
      return trimmed
    },
    connected: async (client, user) => {
      offlineQueues.delete(client.id)
      await record(client.id, user === undefined ? {} : { user })
    },
    disconnected: async (client, user, at) => { await record(client.id, { ...(user === undefined ? {} : { user }), offlineSince: at }) },
    records: async () => {
      const entries = await db.iterator(prefixRange(RECORD)).all()
      return entries.map(([key, value]): [string, SessionRecord] => [decodeURIComponent(key.slice(RECORD.length)), parseRecord(value.toString())])
    },
    online: id => clients()[id] !== undefined,
    markOffline: async (id, rec, at) => { await record(id, { ...rec, offlineSince: at }) },
    remove: async id => {
      await p.cleanSubscriptions({ id })
      await clearQueue(id)
      await db.clear(clientRange('incoming:', id))
      await p.delWill({ id })
      await db.batch([{ type: 'del', key: recordKey(id) }])
      deleted(1)
      return true
    },
    adoptLegacy: async at => {
      for (const id of await clientIdsUnder(db, 'subscriptions:')) {
        if (await db.get(recordKey(id)) === undefined) await record(id, { legacy: true, offlineSince: at })
      }
    }
  }
}

interface QueuedPacket { brokerId: string, brokerCounter: number }

/** aedes-persistence-level's key of a queued message (asyncPersistence.js outgoingKey: the counter padded to 16 digits). */
function outgoingKey (clientId: string, packet: QueuedPacket): string {
  return `${clientRange('outgoing:', clientId).gte}${packet.brokerId}:${String(packet.brokerCounter).padStart(16, '0')}`
}

/** Appends `key` to sorted `keys`, or inserts it in its place (messages published concurrently may be queued out of order). */
function insertInOrder (keys: string[], key: string): void {
  let at = keys.length
  while (at > 0 && keys[at - 1]! > key) at--
  keys.splice(at, 0, key)
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

export const levelSessionLimitsContract: PatchContract = {
  patch: 'level-session-limits.ts',
  package: 'aedes-persistence-level',
  writtenAgainst: 'asyncPersistence.js (outgoingKey: outgoing:<id>:<brokerId>:<counter>, oldest first within a run; outgoing-id:, incoming:, subscriptions: and will: keys; outgoingEnqueue, outgoingClearMessageId, cleanIncoming, cleanSubscriptions, delWill)',
  sources: {
    'asyncPersistence.js': [
      "const OUTGOINGID = 'outgoing-id:'",
      'function outgoingKey (clientId, brokerId, brokerCounter) {',
      withTemplates('return `«outgoingByClientKey(clientId)}«brokerId}:«padId(brokerCounter)}`'),
      "return id?.toString().padStart(16, '0')",
      'async outgoingClearMessageId (client, packet) {',
      'async cleanIncoming (client) {',
      'async delWill (client) {'
    ]
  }
}
