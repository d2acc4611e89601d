import t from 'tap'
import { installExactDedupe, isRepeatDelivery } from '../../src/aedes/exact-dedupe.js'
import { AedesUnderTest, slowedPersistence, until } from './harness.js'

// Contract of src/aedes/exact-dedupe.ts with Aedes: a message overtaken by a later one (here
// a retained message waiting for a slow store) still reaches the subscriber, and a message
// matching two of a client's subscriptions reaches it once. With Aedes' own high-water dedupe
// the overtaken message is dropped and this fails.

async function start (patched: boolean): Promise<AedesUnderTest> {
  const persistence = await slowedPersistence('storeRetained', 50, false)
  return await AedesUnderTest.start({
    persistence,
    ...(patched ? { authorizeForward: (client, packet) => isRepeatDelivery(client, packet) ? null : packet } : {})
  }, () => client => { if (patched) installExactDedupe(client) })
}

/** A retained message (stored slowly) and right after it a plain one; what the subscriber got. */
async function retainedThenPlain (aedes: AedesUnderTest): Promise<string[]> {
  const sub = await aedes.connect()
  const got: string[] = []
  sub.on('message', topic => got.push(topic))
  await sub.subscribeAsync('d/#', { qos: 0 })
  const pub = await aedes.connect()
  pub.publish('d/retained', 'r', { qos: 0, retain: true })
  pub.publish('d/plain', 'p', { qos: 0 })
  await until('the plain message', () => got.includes('d/plain'))
  await new Promise(resolve => setTimeout(resolve, 300))
  return got
}

t.test('a retained message overtaken by a plain one still reaches the subscriber', async t => {
  const aedes = await start(true)
  t.teardown(() => aedes.close())
  t.same((await retainedThenPlain(aedes)).sort(), ['d/plain', 'd/retained'])
})

t.test('a message matching two subscriptions of one client reaches it once', async t => {
  const aedes = await start(true)
  t.teardown(() => aedes.close())
  const sub = await aedes.connect()
  const got: string[] = []
  sub.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
  await sub.subscribeAsync({ 'o/#': { qos: 0 }, 'o/+': { qos: 1 } })
  const pub = await aedes.connect()
  for (let i = 0; i < 5; i++) await pub.publishAsync('o/x', String(i), { qos: 1 })
  await until('five messages', () => got.length >= 5)
  await new Promise(resolve => setTimeout(resolve, 200))
  t.same(got, ['o/x 0', 'o/x 1', 'o/x 2', 'o/x 3', 'o/x 4'])
})

t.test('without the patch, Aedes drops the overtaken retained message (what this patch is for)', async t => {
  const aedes = await start(false)
  t.teardown(() => aedes.close())
  t.same(await retainedThenPlain(aedes), ['d/plain'], 'stock Aedes still loses it: when this fails, the patch may no longer be needed (docs/upstream.md)')
})
