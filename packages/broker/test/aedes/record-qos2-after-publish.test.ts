import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Client, PublishPacket } from 'aedes'
import t from 'tap'
import { recordQos2AfterPublish } from '../../src/aedes/record-qos2-after-publish.js'
import { openLevelPersistence } from '../../src/store.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/record-qos2-after-publish.ts with Aedes: the id of an incoming QoS 2
// PUBLISH reaches the store only after the message is published (handed to subscribers), and
// the PUBREC only after that. Stock Aedes stores first: if it still did — the patch no longer
// wrapping the call Aedes makes — the order below would be stored, published and this fails.

t.test('a QoS 2 publish is stored after it is published, and acknowledged after it is stored', async t => {
  const persistence = await openLevelPersistence(await mkdtemp(join(tmpdir(), 'firehose-qos2-')), 'test')
  const order: string[] = []
  const store = (persistence.incomingStorePacket as (client: Client, packet: PublishPacket) => Promise<void>).bind(persistence)
  persistence.incomingStorePacket = async (client: Client, packet: PublishPacket) => {
    order.push(`stored ${packet.topic}`)
    await store(client, packet)
  }
  const record = recordQos2AfterPublish(persistence)
  // Aedes calls `published` once the message is handed to subscribers and queued for sessions
  const aedes = await AedesUnderTest.start({
    persistence,
    published: (packet, client, done) => {
      if (packet.topic.startsWith('q2/')) order.push(`published ${packet.topic}`)
      record(packet, client, done)
    }
  })
  t.teardown(() => aedes.close())
  const sub = await aedes.connect()
  const got: string[] = []
  sub.on('message', topic => got.push(topic))
  await sub.subscribeAsync('q2/#', { qos: 2 })
  const pub = await aedes.connect({ clientId: 'qos2-publisher', clean: false })
  await pub.publishAsync('q2/a', 'x', { qos: 2 })
  order.push('acknowledged q2/a')
  await until('the delivery', () => got.length === 1)
  t.same(order, ['published q2/a', 'stored q2/a', 'acknowledged q2/a'])
})
