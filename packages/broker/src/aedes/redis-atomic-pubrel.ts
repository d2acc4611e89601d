import type { PatchContract } from './contract.js'
import { editApplies, type SourceEdit } from './redis-persistence-module.js'

/**
 * aedes-persistence-redis 12.0, asyncPersistence.js, updateWithClientData: moving a QoS 2
 * message from "PUBLISH sent" to "PUBREL sent" in a subscriber's queue was LREM then RPUSH,
 * two commands: a node dying between them dropped the message from the queue, and the next
 * node never delivered it. The fix writes the PUBREL state first and swaps the list entry in
 * one Lua script. Upstream: docs/upstream.md.
 *
 * The function is module-private: this is an edit of the module's source, compiled by
 * redis-persistence-module.ts.
 */
const ORIGINAL = `  const removed = await db.lrem(clientListKey, 0, pktKey)
  if (removed === 1) {
    await db.rpush(clientListKey, clientUpdateKey)
  }

  const encoded = msgpack.encode(packet)
  if (ttl > 0) {
    const result = await db.set(clientUpdateKey, encoded, 'EX', ttl)
    if (result !== 'OK') {
      throw new Error('no such packet')
    }
    return
  }
  const result = await db.set(clientUpdateKey, encoded)
  if (result !== 'OK') {
    throw new Error('no such packet')
  }
}`

const FIXED = `  const encoded = msgpack.encode(packet)
  const result = ttl > 0
    ? await db.set(clientUpdateKey, encoded, 'EX', ttl)
    : await db.set(clientUpdateKey, encoded)
  if (result !== 'OK') {
    throw new Error('no such packet')
  }
  await db.eval("if redis.call('lrem', KEYS[1], 0, ARGV[1]) == 1 then redis.call('rpush', KEYS[1], ARGV[2]) end", 1, clientListKey, pktKey, clientUpdateKey)
}`

export const atomicPubrelEdit: SourceEdit = { patch: 'redis-atomic-pubrel.ts', original: ORIGINAL, replacement: FIXED }

export const redisAtomicPubrelContract: PatchContract = {
  patch: 'redis-atomic-pubrel.ts',
  package: 'aedes-persistence-redis',
  writtenAgainst: 'asyncPersistence.js (updateWithClientData, the QoS 2 branch)',
  verify: ({ source }) => editApplies(atomicPubrelEdit, source('aedes-persistence-redis', 'asyncPersistence.js'), 'updateWithClientData (LREM, RPUSH, then SET of the PUBREL state)')
}
