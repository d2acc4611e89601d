import t from 'tap'
import { installExactDedupe, isRepeatDelivery } from '../../src/aedes/exact-dedupe.js'
import { orderPublishesPerClient } from '../../src/aedes/ordered-publishes.js'
import { AedesUnderTest, slowedPersistence, until } from './harness.js'

// Contract of src/aedes/ordered-publishes.ts with Aedes: a client's QoS 1 messages reach
// subscribers in the order it sent them, even when the store steps before delivery take
// longer for some messages than for others (here: a lookup of persistent subscriptions that
// takes 0-5 ms at random). Without the patch they overtake each other and this fails.

async function burst (patched: boolean): Promise<string[]> {
  const persistence = await slowedPersistence('subscriptionsByTopic', 5)
  // Aedes' own dedupe would drop the overtaken ones: exact-dedupe.ts keeps them, so only order is tested
  const aedes = await AedesUnderTest.start({
    persistence,
    authorizeForward: (client, packet) => isRepeatDelivery(client, packet) ? null : packet
  }, () => installExactDedupe)
  if (patched) orderPublishesPerClient(aedes.broker)
  try {
    const sub = await aedes.connect()
    const got: string[] = []
    sub.on('message', (_topic, payload) => got.push(payload.toString()))
    await sub.subscribeAsync('q/#', { qos: 1 })
    const pub = await aedes.connect()
    await Promise.all(Array.from({ length: 100 }, async (_, i) => await pub.publishAsync('q/x', String(i), { qos: 1 })))
    await until('every message', () => got.length === 100)
    return got
  } finally {
    await aedes.close()
  }
}

const inOrder = Array.from({ length: 100 }, (_, i) => String(i))

t.test('a client\'s QoS 1 messages reach the subscriber in the order it sent them', async t => {
  t.same(await burst(true), inOrder)
})

t.test('without the patch they overtake each other (what this patch is for)', async t => {
  t.notSame(await burst(false), inOrder, 'stock Aedes reorders them: when this fails, the patch may no longer be needed (docs/upstream.md)')
})
