import t from 'tap'
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
