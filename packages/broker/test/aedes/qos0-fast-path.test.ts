import t from 'tap'
import { installExactDedupe, isRepeatDelivery } from '../../src/aedes/exact-dedupe.js'
import { grantedQos } from '../../src/aedes/granted-qos.js'
import { Qos0FastPath } from '../../src/aedes/qos0-fast-path.js'
import { WriteCoalescer } from '../../src/aedes/write-coalescer.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/qos0-fast-path.ts with Aedes: installed on each client right after
// broker.handle(), it takes over every QoS 0 delivery, so a message is encoded once however
// many subscribers get it. If Aedes stopped calling client.deliver0 (renamed it, or kept
// another function in its subscriptions), deliveries would go through Aedes' own path:
// encodes would stay 0 and this test fails.

const SUBSCRIBERS = 8

t.test('QoS 0 messages to N subscribers are encoded once each, and every subscriber gets them whole', async t => {
  const coalescer = new WriteCoalescer()
  let fastPath: Qos0FastPath | undefined
  const aedes = await AedesUnderTest.start({}, broker => {
    const path = fastPath = new Qos0FastPath(broker, coalescer)
    return client => {
      coalescer.attach(client.conn)
      path.install(client)
    }
  })
  t.teardown(() => aedes.close())
  const received: string[][] = []
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const sub = await aedes.connect()
    const got: string[] = []
    received.push(got)
    sub.on('message', (topic, payload, packet) => got.push(`${topic} ${payload.toString()} qos${packet.qos}`))
    // a QoS 1 subscription gets QoS 0 messages through Aedes' downgrade, which calls deliver0 too
    await sub.subscribeAsync('fan/#', { qos: i % 2 === 0 ? 1 : 0 })
  }
  for (const n of [1, 2, 3]) aedes.broker.publish({ cmd: 'publish', topic: `fan/${n}`, payload: Buffer.from(`message ${n}`), qos: 0, retain: false, dup: false }, () => {})
  await until('every subscriber to get the three messages', () => received.every(got => got.length === 3))
  for (const got of received) t.same(got, ['fan/1 message 1 qos0', 'fan/2 message 2 qos0', 'fan/3 message 3 qos0'])
  t.equal(fastPath?.encodes, 3, `3 encodes for ${3 * SUBSCRIBERS} deliveries`)
})

t.test('MQTT 3.1 subscribers get the same message, encoded for their version', async t => {
  let fastPath: Qos0FastPath | undefined
  const aedes = await AedesUnderTest.start({}, broker => {
    const path = fastPath = new Qos0FastPath(broker, new WriteCoalescer())
    return client => path.install(client)
  })
  t.teardown(() => aedes.close())
  const got: string[] = []
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const sub = await aedes.connect({ protocolVersion: 3, protocolId: 'MQIsdp' })
    sub.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
    await sub.subscribeAsync('old/topic', { qos: 0 })
  }
  aedes.broker.publish({ cmd: 'publish', topic: 'old/topic', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }, () => {})
  await until('every delivery', () => got.length === SUBSCRIBERS)
  t.same(new Set(got), new Set(['old/topic x']))
  t.equal(fastPath?.encodes, 1, `one encode for ${SUBSCRIBERS} MQTT 3.1 subscribers`)
})

// The fast path also fans messages out itself (in place of mqemitter's fastparallel) and, from
// the first message on, delivers to QoS 0 subscriptions without calling Aedes' subscription
// function (which copies every message before delivering it). If Aedes stopped building the
// subscription the way qos0-fast-path.ts expects, sharedSubscriptions would stay 0 here; if the
// fast path got a rule of Aedes' function wrong, the deliveries below would differ; if it did not
// call the emitter back once a message's deliveries are done, `publish` would never resolve.
t.test('QoS 0 subscriptions deliver without a copy per subscriber, with the rules of Aedes\' own subscription function', async t => {
  let fastPath: Qos0FastPath | undefined
  const aedes = await AedesUnderTest.start({}, broker => {
    const path = fastPath = new Qos0FastPath(broker, new WriteCoalescer())
    return client => path.install(client)
  })
  t.teardown(() => aedes.close())
  const got = new Map<string, string[]>()
  const subscriber = async (name: string, filter: string, qos: 0 | 1): Promise<void> => {
    const sub = await aedes.connect({ clientId: name })
    const lines: string[] = []
    got.set(name, lines)
    sub.on('message', (topic, payload, packet) => lines.push(`${topic} ${payload.toString()} qos${packet.qos}${packet.retain ? ' retained' : ''}`))
    await sub.subscribeAsync(filter, { qos })
  }
  // one after another: a retained message waits for the store, so a later one could overtake it
  const publish = async (topic: string, payload: string, qos: 0 | 1 = 0, retain = false): Promise<void> => {
    await new Promise(resolve => aedes.broker.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false }, resolve))
  }
  await publish('r/kept', 'before', 0, true)
  await subscriber('hash', '#', 0)
  await subscriber('plus', '+/kept', 0)
  await subscriber('dollar', '$app/#', 0)
  await subscriber('one', 'r/#', 1)
  // the first message to each subscription tells the fast path whose it is
  await publish('r/kept', 'first')
  await publish('$app/x', 'first')
  await until('the first messages', () => got.get('one')?.length === 2 && got.get('dollar')?.length === 1)
  t.equal(fastPath?.sharedSubscriptions, 3, 'the three QoS 0 subscriptions, not the QoS 1 one')
  await publish('r/kept', 'live', 0, true) // [MQTT-3.3.1-9]: retain cleared on a live delivery
  await publish('r/kept', 'at qos 1', 1) // to a QoS 0 subscription: at QoS 0, and the QoS 1 one's at QoS 1
  await publish('$app/x', 'dollar') // [MQTT-4.7.2-1]: not to # or +/...
  await publish('r/kept', 'last')
  await until('the last message everywhere', () => ['hash', 'plus', 'one'].every(n => got.get(n)?.at(-1) === 'r/kept last qos0') && got.get('dollar')?.length === 2)
  for (const name of ['hash', 'plus', 'one']) {
    t.same(got.get(name), ['r/kept before qos0 retained', 'r/kept first qos0', 'r/kept live qos0', `r/kept at qos 1 qos${name === 'one' ? 1 : 0}`, 'r/kept last qos0'], name)
  }
  t.same(got.get('dollar'), ['$app/x first qos0', '$app/x dollar qos0'])

  // unsubscribing removes Aedes' function, which the fast path delivered for
  const hash = aedes.clients[0]!
  await hash.unsubscribeAsync('#')
  // re-subscribing at another QoS replaces it: QoS 1 goes through Aedes' function
  const plus = aedes.clients[1]!
  await plus.subscribeAsync('+/kept', { qos: 1 })
  await publish('r/kept', 'after', 1)
  await until('the QoS 1 subscribers to get it', () => got.get('plus')?.at(-1) === 'r/kept after qos1' && got.get('one')?.at(-1) === 'r/kept after qos1')
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(got.get('hash')?.at(-1), 'r/kept last qos0', 'nothing after UNSUBSCRIBE')
  t.equal(got.get('plus')?.filter(line => line.includes('after')).length, 1, 'once, after re-subscribing')
})

// QoS 1 and 2 messages (the bridges publish at QoS 2) go the same copy-free way to a client whose
// matching subscriptions are all QoS 0; a client with a matching QoS 1 subscription gets them
// through Aedes, at QoS 1 [MQTT-3.3.5-1]. If the fast path took them for that client, it would
// get them at QoS 0; if it never took QoS 1/2 messages, directDeliveries would not grow.
t.test('QoS 1 and 2 messages reach QoS 0 subscribers on the fast path, and overlapping QoS 1 subscriptions at QoS 1', async t => {
  let fastPath: Qos0FastPath | undefined
  const coalescer = new WriteCoalescer()
  const aedes = await AedesUnderTest.start({}, broker => {
    const path = fastPath = new Qos0FastPath(broker, coalescer)
    // what Firehose's authorizeForward does of it: a repeat goes once, at the highest granted QoS
    broker.authorizeForward = (client, packet) => {
      if (isRepeatDelivery(client, packet)) return null
      if (packet.qos > 0) packet.qos = Math.min(packet.qos, grantedQos(client, packet.topic)) as 0 | 1 | 2
      return packet
    }
    return client => {
      installExactDedupe(client)
      coalescer.attach(client.conn)
      path.install(client)
    }
  })
  t.teardown(() => aedes.close())
  const got = new Map<string, string[]>()
  const subscriber = async (name: string, subscriptions: Record<string, { qos: 0 | 1 }>): Promise<void> => {
    const sub = await aedes.connect({ clientId: name })
    const lines: string[] = []
    got.set(name, lines)
    sub.on('message', (_topic, payload, packet) => lines.push(`${payload.toString()} qos${packet.qos}`))
    await sub.subscribeAsync(subscriptions)
  }
  await subscriber('zero', { 'q/#': { qos: 0 } })
  await subscriber('zero-too', { '#': { qos: 0 } })
  await subscriber('both', { '#': { qos: 0 }, 'q/#': { qos: 1 } })
  const publish = async (payload: string, qos: 0 | 1 | 2): Promise<void> => {
    await new Promise(resolve => aedes.broker.publish({ cmd: 'publish', topic: 'q/x', payload: Buffer.from(payload), qos, retain: false, dup: false }, resolve))
  }
  await publish('learn', 0) // the first message shows whose each subscription is
  await until('the first message everywhere', () => [...got.values()].every(lines => lines.length === 1))
  const before = fastPath!.directDeliveries
  for (const qos of [1, 2, 0] as const) await publish(`at ${qos}`, qos)
  await until('every message everywhere', () => [...got.values()].every(lines => lines.length === 4))
  await new Promise(resolve => setTimeout(resolve, 100))
  for (const name of ['zero', 'zero-too']) t.same(got.get(name), ['learn qos0', 'at 1 qos0', 'at 2 qos0', 'at 0 qos0'], name)
  t.same(got.get('both'), ['learn qos0', 'at 1 qos1', 'at 2 qos1', 'at 0 qos0'], 'once each, at the highest granted QoS')
  // zero and zero-too for the QoS 1 and 2 messages, all three subscriptions' first for the QoS 0 one (both's second is a repeat)
  t.equal(fastPath!.directDeliveries - before, 2 + 2 + 3, 'the QoS 1 and 2 messages went the copy-free way to the QoS 0 subscribers')
})
