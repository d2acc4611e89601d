// Run by `npm install` / `npm ci` (postinstall): small fixes to dependencies, each checked
// against the exact text it replaces, idempotent, and failing the install loudly if the
// dependency has changed under it. The broker refuses to run a cluster node without them
// (packages/broker/src/cluster/redis-backends.ts checks the marker).
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(fileURLToPath(new URL('../packages/broker/package.json', import.meta.url)))

const PATCHES = [
  {
    // aedes-persistence-redis 12: moving a QoS 2 message from "PUBLISH sent" to "PUBREL sent"
    // in a subscriber's queue was LREM then RPUSH, two commands: a node dying between them
    // dropped the message from the queue, and the next node never delivered it. Now the
    // PUBREL state is written first and the list entry swapped in one Lua script.
    module: 'aedes-persistence-redis/asyncPersistence.js',
    marker: '/* firehose: atomic QoS 2 queue update */',
    from: `  const removed = await db.lrem(clientListKey, 0, pktKey)
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
}`,
    to: `  /* firehose: atomic QoS 2 queue update */
  const encoded = msgpack.encode(packet)
  const result = ttl > 0
    ? await db.set(clientUpdateKey, encoded, 'EX', ttl)
    : await db.set(clientUpdateKey, encoded)
  if (result !== 'OK') {
    throw new Error('no such packet')
  }
  await db.eval("if redis.call('lrem', KEYS[1], 0, ARGV[1]) == 1 then redis.call('rpush', KEYS[1], ARGV[2]) end", 1, clientListKey, pktKey, clientUpdateKey)
}`
  }
]

for (const patch of PATCHES) {
  const file = require.resolve(patch.module)
  const text = readFileSync(file, 'utf8')
  if (text.includes(patch.marker)) continue
  if (!text.includes(patch.from)) {
    console.error(`patch-dependencies: ${patch.module} is not the version this patch was written for (${file}); check the fix upstream and update scripts/patch-dependencies.mjs`)
    process.exit(1)
  }
  writeFileSync(file, text.replace(patch.from, patch.to))
  console.log(`patch-dependencies: patched ${patch.module}`)
}
