import { Readable } from 'node:stream'
import type { PatchContract } from './contract.js'
import { clientIdsUnder } from './level-keys.js'

/** What this patch uses of the store's classic-level database. */
export interface LevelKeys {
  keys: (options: { gte: string, lt: string, limit?: number }) => { all: () => Promise<string[]> }
  compactRange: (start: string, end: string) => Promise<void>
}

/** What this patch wraps of an aedes-persistence-level 9.2 instance (asyncPersistence.js). */
interface LevelPersistence {
  outgoingEnqueue: (sub: { clientId: string }, packet: unknown) => Promise<unknown>
  outgoingStream: (client: { id: string | null }) => Readable
  outgoingClearMessageId: (client: unknown, packet: unknown) => Promise<unknown>
  incomingStorePacket: (client: { id: string | null }, packet: unknown) => Promise<unknown>
  incomingDelPacket: (client: unknown, packet: unknown) => Promise<unknown>
  cleanIncoming: (client: { id: string | null }) => Promise<unknown>
  addSubscriptions: (client: { id: string | null }, subs: unknown) => Promise<unknown>
  removeSubscriptions: (client: unknown, topics: readonly string[]) => Promise<unknown>
  cleanSubscriptions: (client: { id: string | null }) => Promise<unknown>
  delWill: (client: unknown) => Promise<unknown>
}

/** aedes-persistence-level's key prefixes (a client id is URI-encoded, then ':'). */
const INCOMING = 'incoming:'
const OUTGOING = 'outgoing:'
const SUBSCRIPTIONS = 'subscriptions:'

export interface TidyOptions {
  /** keys deleted since the last compaction that start the next one */
  compactAfterDeletes?: number
  log: (event: string, fields: Record<string, unknown>) => void
}

export interface TidyStats {
  compactions: number
  /** range operations not made: the client had nothing stored there */
  rangesSkipped: number
  /** tells the upkeep of keys deleted elsewhere (they count towards the next compaction) */
  deleted: (keys: number) => void
}

/**
 * Written against aedes-persistence-level 9.2 (asyncPersistence.js: its key layout, and
 * `cleanIncoming`, `outgoingStream`, which are range operations on LevelDB) and Aedes 1.2
 * (lib/client.js `close` calls `cleanIncoming` for every clean client, lib/handlers/connect.js
 * calls it and `outgoingStream` at every CONNECT).
 *
 * A LevelDB range operation seeks, then steps over deleted keys until it meets a live one — past
 * the end of its range if need be. Every message queued for a persistent session and acknowledged
 * leaves two such tombstones until LevelDB compacts them away, which it does only as files fill:
 * after a few tens of thousands, each range operation cost milliseconds, every CONNECT and every
 * closed socket made three of them (a socket that never sent CONNECT too: `cleanIncoming` of
 * client id null), and a burst of closed sockets kept both cores busy for seconds while new
 * clients waited for their CONNACK. So:
 *
 * - the client ids that have incoming (QoS 2) records, queued messages or stored subscriptions
 *   are known (read from the keys at start, then kept as they are written): a client with none —
 *   every clean client — gets no range operation at all, and a socket that never connected has none;
 * - after `compactAfterDeletes` keys deleted, the store is compacted in the background, which
 *   drops the tombstones (for the persistent sessions' own ranges, and everything else).
 */
export async function tidyLevelStore (persistence: object, db: LevelKeys, options: TidyOptions): Promise<TidyStats> {
  const p = persistence as LevelPersistence
  const stats: TidyStats = { compactions: 0, rangesSkipped: 0, deleted: keys => { deletedKeys(keys) } }
  const withIncoming = await clientIdsUnder(db, INCOMING)
  const withSubscriptions = await clientIdsUnder(db, SUBSCRIPTIONS)
  /** client id → messages queued for it since start (a stream that found none forgets the id only if none came meanwhile) */
  const withOutgoing = new Map<string, number>([...await clientIdsUnder(db, OUTGOING)].map(id => [id, 0]))
  const threshold = options.compactAfterDeletes ?? 10_000
  let deleted = 0
  let compacting = false
  const deletedKeys = (n: number): void => {
    deleted += n
    if (deleted < threshold || compacting) return
    compacting = true
    const keys = deleted
    deleted = 0
    const started = performance.now()
    db.compactRange('', '\uffff').then(() => {
      stats.compactions++
      options.log('store.compacted', { deletedKeys: keys, ms: Math.round(performance.now() - started) })
    }, (err: Error) => {
      options.log('store.compaction-failed', { err: err.message })
    }).finally(() => { compacting = false })
  }
  const queued = (clientId: string): void => { withOutgoing.set(clientId, (withOutgoing.get(clientId) ?? 0) + 1) }

  // outgoingEnqueueCombi goes through outgoingEnqueue, once per subscriber
  const enqueue = p.outgoingEnqueue.bind(p)
  p.outgoingEnqueue = async (sub, packet) => { queued(sub.clientId); return await enqueue(sub, packet) }
  const outgoingStream = p.outgoingStream.bind(p)
  p.outgoingStream = client => {
    const id = client.id
    const seen = id === null ? undefined : withOutgoing.get(id)
    if (seen === undefined) {
      stats.rangesSkipped++
      return Readable.from([])
    }
    const stream = outgoingStream(client)
    let found = 0
    stream.on('data', () => { found++ })
    stream.on('end', () => { if (found === 0 && withOutgoing.get(id!) === seen) withOutgoing.delete(id!) })
    return stream
  }
  const clear = p.outgoingClearMessageId.bind(p)
  p.outgoingClearMessageId = async (client, packet) => {
    const result = await clear(client, packet)
    if (result !== undefined) deletedKeys(2)
    return result
  }
  const store = p.incomingStorePacket.bind(p)
  p.incomingStorePacket = async (client, packet) => {
    if (client.id !== null) withIncoming.add(client.id)
    return await store(client, packet)
  }
  const incomingDel = p.incomingDelPacket.bind(p)
  p.incomingDelPacket = async (client, packet) => { deletedKeys(1); return await incomingDel(client, packet) }
  /** Runs a per-client clean-up only for a client with keys there: a socket closed before CONNECT (id null) has none, nor has a clean client. */
  const ifStored = (ids: Set<string>, clean: (client: { id: string | null }) => Promise<unknown>, deletes: number) => async (client: { id: string | null }): Promise<unknown> => {
    if (client.id === null || !ids.has(client.id)) {
      stats.rangesSkipped++
      return
    }
    ids.delete(client.id)
    deletedKeys(deletes)
    return await clean(client)
  }
  p.cleanIncoming = ifStored(withIncoming, p.cleanIncoming.bind(p), 1)
  const addSubscriptions = p.addSubscriptions.bind(p)
  p.addSubscriptions = async (client, subs) => {
    if (client.id !== null) withSubscriptions.add(client.id)
    return await addSubscriptions(client, subs)
  }
  // a clean session's CONNECT: only a client id that had a persistent session has subscriptions stored
  // (their keys are counted by removeSubscriptions, which cleanSubscriptions calls)
  p.cleanSubscriptions = ifStored(withSubscriptions, p.cleanSubscriptions.bind(p), 0)
  const removeSubscriptions = p.removeSubscriptions.bind(p)
  p.removeSubscriptions = async (client, topics) => { deletedKeys(topics.length); return await removeSubscriptions(client, topics) }
  const delWill = p.delWill.bind(p)
  p.delWill = async client => {
    const will = await delWill(client)
    if (will !== undefined) deletedKeys(1)
    return will
  }
  return stats
}

/** The line of a `*ByClientKey` function: `return \`${PREFIX}${encodeURIComponent(clientId)}:\`` (built: it is source text, not a template). */
function keyFunction (prefix: string): string {
  const dollar = '$'
  return `return \`${dollar}{${prefix}}${dollar}{encodeURIComponent(clientId)}:\``
}

export const tidyLevelStoreContract: PatchContract = {
  patch: 'tidy-level-store.ts',
  package: 'aedes-persistence-level',
  writtenAgainst: 'asyncPersistence.js (key prefixes incoming:, outgoing: and subscriptions:, and the client-id part of their keys; cleanIncoming, cleanSubscriptions, outgoingStream and the methods that write and delete) with aedes lib/client.js close and lib/handlers/connect.js',
  sources: {
    'asyncPersistence.js': [
      "const OUTGOING = 'outgoing:'",
      "const INCOMING = 'incoming:'",
      "const SUBSCRIPTIONS = 'subscriptions:'",
      keyFunction('SUBSCRIPTIONS'),
      'async cleanSubscriptions (client) {',
      'async addSubscriptions (client, subs) {',
      keyFunction('OUTGOING'),
      keyFunction('INCOMING'),
      'await this.#dbClear(prefixRange(incomingByClientKey(client.id)))',
      'outgoingByClientKey(client.id)',
      'async outgoingEnqueue (sub, packet) {',
      'promises.push(this.outgoingEnqueue(subs[i], packet))',
      'async incomingStorePacket (client, packet) {'
    ]
  }
}
