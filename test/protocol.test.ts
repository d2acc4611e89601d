import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { collect, connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { connectPacket, RawClient } from './helpers/raw.js'
import { sleep, waitFor } from './helpers/wait.js'

// MQTT 3.1.1 details where stock Aedes differs from the spec or from Mosquitto.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`

t.test('zero-length client id with clean session 0 gets CONNACK 2 [MQTT-3.1.3-8]', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  // by hand: mqtt.js and mqtt-packet refuse to build this packet
  raw.write(Buffer.from([0x10, 12, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x00, 0, 60, 0, 0]))
  await waitFor('CONNACK', () => raw.packets.length > 0)
  t.match(raw.packets[0], { cmd: 'connack', returnCode: 2 })
  await waitFor('the connection to close', () => raw.closed)
})

t.test('zero-length client id with clean session 1 is accepted [MQTT-3.1.3-6]', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  t.teardown(() => raw.destroy())
  raw.send(connectPacket({ clientId: '', clean: true }))
  await waitFor('CONNACK', () => raw.packets.length > 0)
  t.match(raw.packets[0], { cmd: 'connack', returnCode: 0 })
})

t.test('zero-length client id in MQTT 3.1 gets CONNACK 2', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  raw.write(Buffer.from([0x10, 14, 0, 6, 0x4d, 0x51, 0x49, 0x73, 0x64, 0x70, 3, 0x02, 0, 60, 0, 0]))
  await waitFor('CONNACK', () => raw.packets.length > 0)
  t.match(raw.packets[0], { cmd: 'connack', returnCode: 2 })
})

t.test('a client id longer than limits.maxClientIdLength gets CONNACK 2', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  raw.send(connectPacket({ clientId: 'x'.repeat(257) }))
  await waitFor('CONNACK', () => raw.packets.length > 0)
  t.match(raw.packets[0], { cmd: 'connack', returnCode: 2 })
  const fine = await RawClient.open(broker.ports.mqtt)
  t.teardown(() => fine.destroy())
  fine.send(connectPacket({ clientId: 'x'.repeat(256) }))
  await waitFor('CONNACK', () => fine.packets.length > 0)
  t.match(fine.packets[0], { cmd: 'connack', returnCode: 0 })
})

t.test('a subscription the ACL denies gets SUBACK 0x80; the others in the packet are granted', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  t.teardown(() => raw.destroy())
  raw.send(connectPacket({ username: 'launchpad', password: Buffer.from(USERS.launchpad) }))
  await waitFor('CONNACK', () => raw.packets.length > 0)
  t.match(raw.packets[0], { cmd: 'connack', returnCode: 0 })
  raw.send({ cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 'launchpad/#', qos: 1 }, { topic: 'gerrit/#', qos: 1 }] })
  await waitFor('SUBACK', () => raw.packets.length > 1)
  t.match(raw.packets[1], { cmd: 'suback', messageId: 9, granted: [1, 128] })
  raw.send({ cmd: 'pingreq' })
  await waitFor('PINGRESP', () => raw.packets.length > 2)
  t.match(raw.packets[2], { cmd: 'pingresp' }, 'still connected and served')
})

t.test('anonymous clients may subscribe to everything, $SYS/# included', async t => {
  const anon = await connect(url)
  t.teardown(() => anon.endAsync())
  const granted = await anon.subscribeAsync({ '#': { qos: 1 }, '$SYS/#': { qos: 0 }, 'gerrit/+/x': { qos: 1 } })
  t.same(granted.map(g => g.qos), [1, 0, 1])
})

t.test('an anonymous client with a will connects; its will is dropped, a bridge\'s will is published', async t => {
  const reader = await connect(url)
  t.teardown(() => reader.endAsync())
  const got = collect(reader)
  await reader.subscribeAsync('#')
  // mqttwarn-style: an anonymous tool announcing itself with a will and a status publish
  const tool = await connect(url, { clientId: 'mqttwarn', will: { topic: 'mqttwarn/status', payload: Buffer.from('0'), qos: 1, retain: true } })
  await tool.publishAsync('mqttwarn/status', '1', { qos: 1, retain: true })
  t.ok(tool.connected, 'the tool stays connected after its denied publish')
  const bridge = await connect(url, { clientId: 'gerrit-bridge', username: 'gerrit', password: USERS.gerrit, will: { topic: 'firehose/bridges/gerrit', payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true } })
  // die without DISCONNECT: the wills fire
  ;(tool as unknown as { stream: { destroy: () => void } }).stream.destroy()
  ;(bridge as unknown as { stream: { destroy: () => void } }).stream.destroy()
  await waitFor('the bridge will', () => got.includes('firehose/bridges/gerrit {"state":"offline"}'))
  await sleep(300)
  t.notOk(got.some(m => m.startsWith('mqttwarn/')), 'the anonymous will and status never reached subscribers')
  tool.end(true)
  bridge.end(true)
})

t.test('a denied retained publish is not stored', async t => {
  const anon = await connect(url)
  await anon.publishAsync('gerrit/retained-forgery', 'x', { qos: 1, retain: true })
  await anon.endAsync()
  const reader = await connect(url)
  t.teardown(() => reader.endAsync())
  const got = collect(reader)
  await reader.subscribeAsync('gerrit/retained-forgery')
  await sleep(300)
  t.same(got, [])
})

t.test('QoS 2 publish denied: the handshake completes, nothing is delivered', async t => {
  const anon = await connect(url)
  t.teardown(() => anon.endAsync())
  await anon.publishAsync('gerrit/qos2', 'x', { qos: 2 })
  t.ok(anon.connected)
})
