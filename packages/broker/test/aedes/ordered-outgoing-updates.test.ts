import t from 'tap'
import { installExactDedupe, isRepeatDelivery } from '../../src/aedes/exact-dedupe.js'
import { orderOutgoingUpdates } from '../../src/aedes/ordered-outgoing-updates.js'
import { orderPublishesPerClient } from '../../src/aedes/ordered-publishes.js'
import { AedesUnderTest, slowedPersistence, until } from './harness.js'

// Contract of src/aedes/ordered-outgoing-updates.ts with Aedes: a persistent QoS 1
// subscriber gets messages in the order they were published, even when recording each
// delivery in the store takes longer for some than for others (here 0-5 ms at random).
// Without the patch they overtake each other and the second test shows it.

async function burst (patched: boolean): Promise<string[]> {
  const persistence = await slowedPersistence('outgoingUpdate', 5)
  if (patched) orderOutgoingUpdates(persistence)
  // the messages reach the bus in order (ordered-publishes.ts) and none is dropped as overtaken
  // (exact-dedupe.ts): what is left to order is the subscriber's side
  const aedes = await AedesUnderTest.start({
    persistence,
    authorizeForward: (client, packet) => isRepeatDelivery(client, packet) ? null : packet
  }, () => installExactDedupe)
  orderPublishesPerClient(aedes.broker)
  try {
    const sub = await aedes.connect({ clientId: 'persistent-reader', clean: false })
    const got: string[] = []
    sub.on('message', (_topic, payload) => got.push(payload.toString()))
    await sub.subscribeAsync('p/x', { qos: 1 })
    const pub = await aedes.connect()
    await Promise.all(Array.from({ length: 100 }, async (_, i) => await pub.publishAsync('p/x', String(i), { qos: 1 })))
    await until('every message', () => got.length === 100)
    return got
  } finally {
    await aedes.close()
  }
}

const inOrder = Array.from({ length: 100 }, (_, i) => String(i))

t.test('a persistent QoS 1 subscriber gets messages in the order they were published', async t => {
  t.same(await burst(true), inOrder)
})

t.test('without the patch they overtake each other (what this patch is for)', async t => {
  t.notSame(await burst(false), inOrder, 'stock Aedes reorders them: when this fails, the patch may no longer be needed (docs/upstream.md)')
})
