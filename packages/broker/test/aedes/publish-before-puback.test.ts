import type { PublishPacket } from 'aedes'
import t from 'tap'
import { dropDeniedPublishes } from '../../src/aedes/drop-denied-publishes.js'
import { publishBeforePuback } from '../../src/aedes/publish-before-puback.js'
import { AedesUnderTest, slowedPersistence, until } from './harness.js'

// Contract of src/aedes/publish-before-puback.ts with Aedes: a QoS 1 PUBACK reaches the
// publisher only after the message was published (queued for offline sessions, handed to
// subscribers) — here the queueing takes 100 ms — and the message is published once. Stock
// Aedes sends the PUBACK first: the second test shows it.

async function order (patched: boolean): Promise<string[]> {
  const persistence = await slowedPersistence('subscriptionsByTopic', 100, false)
  const aedes = await AedesUnderTest.start({ persistence })
  if (patched) {
    const denied = new WeakSet<PublishPacket>()
    const published = new WeakSet<PublishPacket>()
    dropDeniedPublishes(aedes.broker, denied, published)
    publishBeforePuback(aedes.broker, denied, published)
  }
  const events: string[] = []
  aedes.broker.on('publish', packet => { if (packet.topic === 'a/x') events.push('published') })
  try {
    const sub = await aedes.connect()
    let delivered = 0
    sub.on('message', () => { delivered++ })
    await sub.subscribeAsync('a/x', { qos: 1 })
    const pub = await aedes.connect()
    await pub.publishAsync('a/x', 'x', { qos: 1 })
    events.push('acknowledged')
    await until('the delivery', () => delivered === 1)
    await new Promise(resolve => setTimeout(resolve, 200))
    t.equal(delivered, 1, 'delivered once')
    return events
  } finally {
    await aedes.close()
  }
}

t.test('the PUBACK follows the publish', async t => {
  t.same(await order(true), ['published', 'acknowledged'])
})

t.test('without the patch the PUBACK comes first (what this patch is for)', async t => {
  t.same(await order(false), ['acknowledged', 'published'], 'stock Aedes acknowledges first: when this fails, the patch may no longer be needed (docs/upstream.md)')
})
