import mqttPacket from 'mqtt-packet'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { connectPacket, RawClient } from './helpers/raw.js'
import { waitFor } from './helpers/wait.js'

// A subscriber that stops reading (a frozen browser tab) is bounded and dropped; the others keep receiving.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { limits: { maxQueuedBytes: 1048576 } } })
t.teardown(() => broker.stop())

/** A raw TCP subscriber on gerrit/# that stops reading once subscribed: the kernel buffers fill, then the broker's queue. */
async function stalledTcpSubscriber (clientId: string): Promise<RawClient> {
  const stalled = await RawClient.open(broker.ports.mqtt)
  stalled.send(connectPacket({ clientId }))
  await waitFor('CONNACK', () => stalled.packets.length > 0)
  stalled.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'gerrit/#', qos: 0 }] })
  await waitFor('SUBACK', () => stalled.packets.length > 1)
  stalled.socket.pause()
  return stalled
}

/** A reading subscriber on gerrit/#, then `total` publishes of `size` bytes to `topic`; how many the reader got. */
async function publishBesideStalled (t: Test, topic: string, size: number, total: number): Promise<number> {
  const reader = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`)
  t.teardown(() => reader.endAsync())
  let received = 0
  reader.on('message', () => { received++ })
  await reader.subscribeAsync('gerrit/#')
  const writer = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => writer.endAsync())
  const payload = Buffer.alloc(size, 'x')
  for (let i = 0; i < total; i++) await writer.publishAsync(topic, payload, { qos: 1 })
  await waitFor('the reader to get every message', () => received === total, 30000).catch(() => {})
  return received
}

const disconnectedAsStalled = (clientId: string): boolean =>
  broker.logs.some(l => l.event === 'client.stalled' && l.clientId === clientId)

t.test('a stalled subscriber is disconnected past limits.maxQueuedBytes and counted; a reading one gets everything', async t => {
  const stalled = await stalledTcpSubscriber('frozen-tab')
  const total = 600 // 64 KiB each, about 38 MiB: far beyond the socket buffers and the 1 MiB bound
  const received = await publishBesideStalled(t, 'gerrit/load', 64 * 1024, total)
  t.equal(received, total, 'the reading subscriber lost nothing')
  t.equal(await broker.metric('firehose_slow_clients_disconnected_total'), 1, 'the stalled one was disconnected and counted')
  t.ok(await broker.metric('firehose_deliveries_dropped_total') >= 1)
  t.ok(disconnectedAsStalled('frozen-tab'), 'and logged by client id')
  stalled.destroy()
})

t.test('small messages: a stalled subscriber does not hold up delivery to the others', async t => {
  // 1 KiB messages: the stalled client's socket stops draining long before limits.maxQueuedBytes
  const stalled = await stalledTcpSubscriber('frozen-tab-small')
  const total = 5000 // about 5 MiB: several times the 1 MiB bound
  const received = await publishBesideStalled(t, 'gerrit/small', 1024, total)
  t.equal(received, total, 'the reading subscriber got everything')
  t.ok(disconnectedAsStalled('frozen-tab-small'), 'the stalled one was disconnected')
  stalled.destroy()
})

t.test('small messages over WebSocket: a stalled browser tab does not hold up the others', async t => {
  const stalled = new WebSocket(`ws://127.0.0.1:${broker.ports.ws}/mqtt`, 'mqtt')
  const frames: Buffer[] = []
  stalled.on('message', (data: Buffer) => frames.push(data))
  await new Promise((resolve, reject) => { stalled.once('open', resolve); stalled.once('error', reject) })
  stalled.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'frozen-ws-tab', keepalive: 0 }))
  stalled.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'gerrit/#', qos: 0 }] }))
  await waitFor('CONNACK and SUBACK', () => Buffer.concat(frames).length >= 9)
  ;(stalled as unknown as { _socket: import('node:net').Socket })._socket.pause() // a frozen tab

  const total = 5000
  const received = await publishBesideStalled(t, 'gerrit/small-ws', 1024, total)
  t.equal(received, total, 'the reading subscriber got everything')
  t.ok(disconnectedAsStalled('frozen-ws-tab'), 'the stalled one was disconnected')
  stalled.terminate()
})
