import type { PublishPacket } from 'aedes'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import t from 'tap'
import { publishQos2Once } from '../../src/aedes/qos2-published-once.js'
import { recordQos2AfterPublish } from '../../src/aedes/record-qos2-after-publish.js'
import { connectCluster } from '../../src/cluster/redis-backends.js'
import { freePort } from '../../../../test/helpers/ports.js'
import { RedisServer } from '../../../../test/helpers/redis.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/qos2-published-once.ts with Aedes, aedes-persistence-redis and
// mqemitter-redis, on Debian's redis-server: a client's QoS 2 message is queued for an offline
// persistent session, recorded as received, and PUBLISHed on the message channel by one
// script, so a node dying can never leave it published but unrecorded (the next node would
// publish the retransmission again). Without the patch they are separate commands: the
// second test shows it.

const redis = await RedisServer.start(await freePort())
t.teardown(() => redis.destroy())

interface Seen { command: string, key: string, source: string }

async function publishQos2 (patched: boolean, clientIds: { reader: string, writer: string }): Promise<{ seen: Seen[], delivered: string[] }> {
  const cluster = await connectCluster({ redis: redis.url, node: 'contract', heartbeatInterval: 1 }, pino({ level: 'silent' }), 'test')
  const recorded = new WeakSet<PublishPacket>()
  const published = recordQos2AfterPublish(cluster.persistence, recorded)
  const aedes = await AedesUnderTest.start({ id: cluster.id, mq: cluster.mq as never, persistence: cluster.persistence as never, published })
  if (patched) publishQos2Once(aedes.broker, recorded)
  const watcher = new Redis(redis.url)
  try {
    const offline = await aedes.connect({ clientId: clientIds.reader, clean: false })
    await offline.subscribeAsync('q2/#', { qos: 2 })
    await offline.endAsync()
    const live = await aedes.connect()
    const delivered: string[] = []
    live.on('message', (_topic, payload) => delivered.push(payload.toString()))
    await live.subscribeAsync('q2/#', { qos: 2 })

    const monitor = await watcher.monitor()
    const seen: Seen[] = []
    monitor.on('monitor', (_time: string, args: string[], source: string) => seen.push({ command: String(args[0]).toLowerCase(), key: String(args[1]), source }))
    const writer = await aedes.connect({ clientId: clientIds.writer, clean: false })
    await writer.publishAsync('q2/x', 'once', { qos: 2 })
    await until('the live subscriber', () => delivered.length === 1)
    await new Promise(resolve => setTimeout(resolve, 200))
    monitor.disconnect()
    return { seen, delivered }
  } finally {
    watcher.disconnect()
    await aedes.close()
    await cluster.close()
  }
}

const writes = (seen: Seen[], writer: string, reader: string): Seen[] => seen.filter(s =>
  (s.command === 'rpush' && s.key === `outgoing:${reader}`) ||
  (s.command === 'hset' && s.key === `incoming:${writer}`) ||
  (s.command === 'publish' && s.key === 'q2/x'))

t.test('queued, recorded as received and published in one script', async t => {
  const { seen, delivered } = await publishQos2(true, { reader: 'r1', writer: 'w1' })
  t.same(delivered, ['once'], 'a live subscriber gets it once')
  const three = writes(seen, 'w1', 'r1')
  t.same(three.map(s => s.command).sort(), ['hset', 'publish', 'rpush'], 'each of the three writes happened once')
  t.ok(three.every(s => s.source === 'lua'), `all inside a script (${JSON.stringify(three)})`)
})

t.test('without the patch they are separate commands (what this patch is for)', async t => {
  const { seen } = await publishQos2(false, { reader: 'r2', writer: 'w2' })
  const three = writes(seen, 'w2', 'r2')
  t.ok(three.length === 3 && three.every(s => s.source !== 'lua'), `stock: three commands from the node (${JSON.stringify(three)}); when this fails, the patch may no longer be needed`)
})
