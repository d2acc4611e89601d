import { Redis } from 'ioredis'
import t from 'tap'
import { atomicPubrelEdit } from '../../src/aedes/redis-atomic-pubrel.js'
import { loadRedisPersistence } from '../../src/aedes/redis-persistence-module.js'
import { freePort } from '../../../../test/helpers/ports.js'
import { RedisServer } from '../../../../test/helpers/redis.js'

// Contract of src/aedes/redis-atomic-pubrel.ts with aedes-persistence-redis, on Debian's
// redis-server: the installed module compiles with the fix, and moving a subscriber's queued
// QoS 2 message to "PUBREL sent" swaps the queue entry inside one Lua script. Stock 12.0 runs
// LREM and RPUSH as two commands from the client: then this test fails.

const redis = await RedisServer.start(await freePort())
t.teardown(() => redis.destroy())

t.test('the PUBREL update swaps the queue entry atomically, in one script', async t => {
  const Persistence = loadRedisPersistence([atomicPubrelEdit])
  const conn = new Redis(redis.url)
  const persistence = new Persistence({ conn }) as unknown as {
    outgoingEnqueueCombi: (subs: object[], packet: object) => Promise<void>
    outgoingUpdate: (client: object, packet: object) => Promise<void>
    destroy: () => Promise<void>
  }
  const watcher = new Redis(redis.url)
  const monitor = await watcher.monitor()
  const commands: Array<{ command: string, source: string }> = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => commands.push({ command: String(args[0]).toLowerCase(), source }))
  t.teardown(async () => {
    monitor.disconnect()
    watcher.disconnect()
    await persistence.destroy().catch(() => {})
    conn.disconnect()
  })

  const client = { id: 'subscriber' }
  const publish = { cmd: 'publish', topic: 'q2/x', payload: Buffer.from('x'), qos: 2, retain: false, dup: false, brokerId: 'node-a', brokerCounter: 7, messageId: 42 }
  await persistence.outgoingEnqueueCombi([{ clientId: 'subscriber', topic: 'q2/#', qos: 2 }], publish)
  await persistence.outgoingUpdate(client, { ...publish })
  commands.length = 0
  await persistence.outgoingUpdate(client, { cmd: 'pubrel', messageId: 42 })
  await new Promise(resolve => setTimeout(resolve, 200))

  const list = await conn.lrange('outgoing:subscriber', 0, -1)
  t.same(list, ['outgoing:subscriber:node-a:7'], 'the queue now holds the PUBREL state, not the PUBLISH')
  const moves = commands.filter(c => c.command === 'lrem' || c.command === 'rpush')
  t.ok(moves.length > 0, 'the entry was moved')
  t.ok(moves.every(c => c.source === 'lua'), `LREM and RPUSH ran inside a script (${JSON.stringify(moves)})`)
})
