import { Readable } from 'node:stream'
import { topicMatches } from '@firehose/runtime'
import type { AedesPersistence } from '../store.js'

const SYS_BROKER = '$SYS/broker/'

interface RetainedPacket { topic: string, payload: Buffer }

/**
 * Every node publishes its own `$SYS/broker/...` (its clients, its load), retained. In a
 * cluster the retained store is shared, so the nodes would overwrite each other's values: the
 * node keeps its own in memory instead, and a subscriber on a node gets that node's.
 * (The live updates from other nodes are dropped in authorizeForward.)
 *
 * It also gives Aedes a stream: aedes-persistence-redis's class returns an async generator
 * from createRetainedStreamCombi, and Aedes calls .pipe() on it (its default export wraps the
 * class; Firehose uses the class). Keep the Readable.from if this file ever goes.
 */
export function keepSysRetainedLocal (persistence: AedesPersistence): AedesPersistence {
  const local = new Map<string, RetainedPacket>()
  const store = (persistence.storeRetained as (p: RetainedPacket) => Promise<void>).bind(persistence)
  const combi = (persistence.createRetainedStreamCombi as (patterns: string[]) => AsyncIterable<RetainedPacket>).bind(persistence)
  persistence.storeRetained = async (packet: RetainedPacket): Promise<void> => {
    if (!packet.topic.startsWith(SYS_BROKER)) return await store(packet)
    if (packet.payload.length === 0) local.delete(packet.topic)
    else local.set(packet.topic, packet)
  }
  persistence.createRetainedStreamCombi = (patterns: string[]): Readable => {
    async function * retained (): AsyncGenerator<RetainedPacket> {
      for (const packet of local.values()) {
        if (patterns.some(p => topicMatches(p, packet.topic))) yield packet
      }
      for await (const packet of combi(patterns)) {
        if (!packet.topic.startsWith(SYS_BROKER)) yield packet
      }
    }
    return Readable.from(retained())
  }
  return persistence
}
