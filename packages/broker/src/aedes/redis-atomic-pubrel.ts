import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { compileFunction } from 'node:vm'
import type { AedesPersistence } from '../store.js'
import type { PatchContract } from './contract.js'

const require = createRequire(import.meta.url)

/**
 * aedes-persistence-redis 12.0, asyncPersistence.js, updateWithClientData: moving a QoS 2
 * message from "PUBLISH sent" to "PUBREL sent" in a subscriber's queue was LREM then RPUSH,
 * two commands: a node dying between them dropped the message from the queue, and the next
 * node never delivered it. The fix writes the PUBREL state first and swaps the list entry in
 * one Lua script. Upstream: docs/upstream.md.
 *
 * The function is module-private and the class keeps its connection in private fields, so it
 * cannot be replaced from outside: the module is compiled here from its installed text with
 * this one function body changed (node_modules is left as installed). The text it replaces
 * must be exactly what it was written against, or the node refuses to start.
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

export type RedisPersistenceClass = new (options: object) => AedesPersistence

/** aedes-persistence-redis's AsyncRedisPersistence, with the atomic PUBREL update. */
export function loadRedisPersistence (): RedisPersistenceClass {
  const file = require.resolve('aedes-persistence-redis/asyncPersistence.js')
  const text = readFileSync(file, 'utf8')
  if (!text.includes(ORIGINAL)) throw new Error(`${file} changed: redis-atomic-pubrel.ts cannot apply (the self-check should have said so)`)
  const module = { exports: {} as unknown }
  const load = compileFunction(text.replace(ORIGINAL, FIXED), ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file })
  load.call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
  return module.exports as RedisPersistenceClass
}

export const redisAtomicPubrelContract: PatchContract = {
  patch: 'redis-atomic-pubrel.ts',
  package: 'aedes-persistence-redis',
  writtenAgainst: 'asyncPersistence.js (updateWithClientData, the QoS 2 branch)',
  verify ({ source }) {
    return source('aedes-persistence-redis', 'asyncPersistence.js').includes(ORIGINAL)
      ? []
      : ['asyncPersistence.js updateWithClientData is no longer the text the fix replaces (LREM, RPUSH, then SET of the PUBREL state)']
  }
}
