import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Aedes } from 'aedes'
import type { AedesPersistence } from '../store.js'
import type { PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'
import { editApplies, loadEditedModule, type SourceEdit } from './redis-persistence-module.js'
import type { SessionRecord, SessionStore } from './session-limits.js'
import { installedDir } from './versions.js'

const ANCHOR = '  outgoingStream (client) {'

/**
 * Methods added to aedes-persistence 11.0's MemoryPersistence (asyncPersistence.js), beside
 * outgoingStream: a session's queue is `this.#outgoing.get(clientId)`, an array oldest first,
 * and private to the class, so nothing outside can count or drop from it.
 */
export const memoryQueueEdit: SourceEdit = {
  patch: 'memory-session-limits.ts',
  original: ANCHOR,
  replacement: `  // Firehose, packages/broker/src/aedes/memory-session-limits.ts
  firehoseQueueLength (clientId) {
    return this.#outgoing.get(clientId)?.length ?? 0
  }

  firehoseDropOldest (clientId, count) {
    const queue = this.#outgoing.get(clientId)
    if (queue === undefined) return 0
    const dropped = queue.splice(0, count).length
    if (queue.length === 0) this.#outgoing.delete(clientId)
    return dropped
  }

  firehoseDropQueue (clientId) {
    this.#outgoing.delete(clientId)
    this.#incoming.delete(clientId)
  }

${ANCHOR}`
}

interface MemoryPersistence extends AedesPersistence {
  outgoingEnqueue: (sub: { clientId: string }, packet: unknown) => Promise<void>
  outgoingEnqueueCombi: (subs: Array<{ clientId: string }>, packet: unknown) => Promise<void>
  cleanIncoming: (client: { id: string | null }) => Promise<void>
  cleanSubscriptions: (client: { id: string }) => Promise<void>
  delWill: (client: { id: string }) => Promise<unknown>
  firehoseQueueLength: (clientId: string) => number
  firehoseDropOldest: (clientId: string, count: number) => number
  firehoseDropQueue: (clientId: string) => void
}

/** aedes-persistence's in-memory store (the one Aedes makes when given none), with the methods above and a clean session's queue dropped at once. */
export function openMemoryPersistence (): AedesPersistence {
  const file = createRequire(join(installedDir('aedes-persistence'), 'package.json')).resolve('./asyncPersistence.js')
  const MemoryPersistenceClass = loadEditedModule(file, [memoryQueueEdit]) as new () => MemoryPersistence
  const persistence = new MemoryPersistenceClass()
  // [MQTT-3.1.2-6]: a clean session discards the previous session's queue, at once (Aedes
  // dropped it while "delivering" it to the clean client, and a client that went away at once
  // left the rest to the next persistent session under that id)
  const cleanIncoming = persistence.cleanIncoming.bind(persistence)
  persistence.cleanIncoming = async client => {
    await cleanIncoming(client)
    if (client.id !== null) persistence.firehoseDropQueue(client.id)
  }
  return persistence
}

/**
 * The session limits (session-limits.ts) when nothing is stored on disk (`persistence: false`):
 * queues are counted and trimmed in the store itself, records kept in a map. Nothing outlives a
 * restart here, so there are neither legacy sessions nor sessions left online by a crash.
 */
export function memorySessionStore (broker: Aedes, persistence: AedesPersistence): SessionStore {
  const p = persistence as MemoryPersistence
  const clients = (): Record<string, unknown> => brokerInternals(broker).clients
  const records = new Map<string, SessionRecord>()
  return {
    watchQueues: queued => {
      // outgoingEnqueueCombi does not go through outgoingEnqueue here
      const enqueue = p.outgoingEnqueue.bind(p)
      p.outgoingEnqueue = async (sub, packet) => {
        await enqueue(sub, packet)
        await queued([sub.clientId])
      }
      const enqueueCombi = p.outgoingEnqueueCombi.bind(p)
      p.outgoingEnqueueCombi = async (subs, packet) => {
        await enqueueCombi(subs, packet)
        if (subs.length > 0) await queued(subs.map(sub => sub.clientId))
      }
    },
    trim: async (ids, max) => {
      const trimmed: Array<[string, number]> = []
      for (const id of ids) {
        const over = p.firehoseQueueLength(id) - max
        if (over > 0 && clients()[id] === undefined) trimmed.push([id, p.firehoseDropOldest(id, over)])
      }
      return trimmed
    },
    connected: async (client, user) => { records.set(client.id, user === undefined ? {} : { user }) },
    disconnected: async (client, user, at) => { records.set(client.id, { ...(user === undefined ? {} : { user }), offlineSince: at }) },
    records: async () => [...records],
    online: id => clients()[id] !== undefined,
    markOffline: async (id, rec, at) => { records.set(id, { ...rec, offlineSince: at }) },
    remove: async (id, rec) => {
      if (records.get(id) !== rec) return false
      await p.cleanSubscriptions({ id })
      p.firehoseDropQueue(id)
      await p.delWill({ id })
      records.delete(id)
      return true
    },
    adoptLegacy: async () => {}
  }
}

export const memorySessionLimitsContract: PatchContract = {
  patch: 'memory-session-limits.ts',
  package: 'aedes-persistence',
  writtenAgainst: 'asyncPersistence.js (MemoryPersistence: #outgoing, a Map of client id to its queue, oldest first; #incoming; outgoingEnqueueCombi not going through outgoingEnqueue; cleanIncoming), with aedes lib/handlers/connect.js and lib/client.js calling cleanIncoming for a clean session',
  sources: {
    'asyncPersistence.js': [
      'const queue = getMapRef(this.#outgoing, id, [], CREATE_ON_EMPTY)\n    queue[queue.length] = new Packet(packet)',
      'this.#outgoingEnqueuePerSub(subs[i], packet)',
      'this.#incoming.delete(client.id)'
    ]
  },
  verify: ({ source }) => editApplies(memoryQueueEdit, source('aedes-persistence', 'asyncPersistence.js'), 'has no `outgoingStream (client) {` to add the methods beside')
}
