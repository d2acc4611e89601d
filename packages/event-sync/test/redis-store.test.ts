import { Redis } from 'ioredis'
import t from 'tap'
import { RedisEventSyncStore } from '../src/index.js'
import { freePort } from '../../../test/helpers/ports.js'
import { RedisServer } from '../../../test/helpers/redis.js'

// Event sync's state on a real redis-server: the lock that names the running node, names taken
// once cluster-wide, the version nodes watch, checkpoints and state views.

const redis = await RedisServer.start(await freePort())
const db = new Redis(redis.url)
t.teardown(async () => {
  db.disconnect()
  await redis.destroy()
})
const store = new RedisEventSyncStore(db)

t.test('the lock: one holder, renewed by it, lapsing when not, let go at a clean stop', async t => {
  t.equal(await store.holdLock('a', 300), true)
  t.equal(await store.holdLock('b', 300), false, 'held by a')
  t.equal(await store.holdLock('a', 300), true, 'renewed')
  await new Promise(resolve => setTimeout(resolve, 400))
  t.equal(await store.holdLock('b', 300), true, 'lapsed: b takes it')
  await store.releaseLock('a')
  t.equal(await store.holdLock('a', 300), false, 'a cannot let go of what b holds')
  await store.releaseLock('b')
  t.equal(await store.holdLock('a', 300), true, 'let go: taken at once')
  await store.releaseLock('a')
})

t.test('rules: a name once; every change moves the version; a deleted rule takes its checkpoint and state along', async t => {
  const v0 = await store.version()
  t.equal(await store.putRule('r', { owner: 'alice', definition: { name: 'r' }, created: 1 }), true)
  t.equal(await store.putRule('r', { owner: 'bob', definition: { name: 'r' }, created: 2 }), false, 'taken')
  const v1 = await store.version()
  t.not(v1, v0)
  t.same([...(await store.rules())], [['r', { owner: 'alice', definition: { name: 'r' }, created: 1 }]])
  await store.writeCheckpoints(new Map([['r', { version: 'x', through: 5, exportedThrough: 3, clock: 9 }]]))
  await store.writeStates(new Map([['r', { name: 'r', node: 'a' }]]))
  t.same((await store.checkpoints()).get('r'), { version: 'x', through: 5, exportedThrough: 3, clock: 9 })
  t.same(await store.readState('r'), { name: 'r', node: 'a' })
  await store.deleteRule('r')
  t.not(await store.version(), v1)
  t.same([...(await store.rules())], [])
  t.equal((await store.checkpoints()).get('r'), undefined)
  t.equal(await store.readState('r'), undefined)
})
