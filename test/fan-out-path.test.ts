import { readFileSync } from 'node:fs'
import mqttPacket, { type Packet } from 'mqtt-packet'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { connectPacket, RawClient } from './helpers/raw.js'
import { sleep, waitFor } from './helpers/wait.js'

// The fan-out path (QoS 0 encoded once per message, writes coalesced per event-loop turn, whole
// WebSocket frames) must deliver exactly what Aedes' own path did: every message, whole, once,
// in order, with the right flags, to every kind of subscriber.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const mqttUrl = `mqtt://127.0.0.1:${broker.ports.mqtt}`
const wsUrl = `ws://127.0.0.1:${broker.ports.ws}/mqtt`

/** A raw MQTT-over-WebSocket subscriber: every frame kept, as the broker sent it. */
async function rawWebSocketSubscriber (filter: string): Promise<{ frames: Buffer[], close: () => void }> {
  const ws = new WebSocket(wsUrl, 'mqtt')
  const frames: Buffer[] = []
  ws.on('message', data => frames.push(data as Buffer))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send(mqttPacket.generate(connectPacket() as unknown as Packet))
  ws.send(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] }))
  await waitFor('CONNACK and SUBACK', () => frames.length >= 2)
  frames.length = 0
  return { frames, close: () => ws.close() }
}

/** A raw MQTT connection as gerrit, connected: what it writes, the broker reads as it was written. */
async function rawPublisher (t: Test): Promise<RawClient> {
  const raw = await RawClient.open(broker.ports.mqtt)
  t.teardown(() => raw.destroy())
  raw.send(connectPacket({ username: 'gerrit', password: Buffer.from(USERS.gerrit) }))
  await waitFor('CONNACK', () => raw.packets.length > 0)
  return raw
}

/** The packets in `bytes`, which must hold whole packets and nothing else. */
function wholePackets (bytes: Buffer): Packet[] {
  const parser = mqttPacket.parser({ protocolVersion: 4 })
  const packets: Packet[] = []
  parser.on('packet', p => packets.push(p))
  parser.on('error', err => { throw err })
  const left = parser.parse(bytes)
  if (left !== 0) throw new Error(`${left} bytes of a partial packet`)
  return packets
}

t.test('every subscriber gets every message, whole, once and in order: TCP 3.1.1 and 3.1, WebSocket, TLS', async t => {
  const ca = readFileSync(broker.certs.ca)
  const subscribers = await Promise.all([
    connect(mqttUrl),
    connect(mqttUrl, { protocolVersion: 3, protocolId: 'MQIsdp' }),
    connect(`ws://127.0.0.1:${broker.ports.ws}`),
    connect(`mqtts://127.0.0.1:${broker.ports.mqtts}`, { ca, servername: 'localhost' }),
    connect(`wss://127.0.0.1:${broker.ports.wss}`, { ca, servername: 'localhost' })
  ])
  const got = subscribers.map(() => [] as string[])
  const flags = subscribers.map(() => new Set<string>())
  subscribers.forEach((s, i) => {
    t.teardown(() => s.endAsync())
    const mine = got[i]!
    const myFlags = flags[i]!
    s.on('message', (topic, payload, packet) => {
      mine.push(`${topic} ${payload.toString('base64')}`)
      myFlags.add(`qos${packet.qos} retain=${packet.retain} dup=${packet.dup}`)
    })
  })
  await Promise.all(subscribers.map(s => s.subscribeAsync('gerrit/#', { qos: 0 })))
  const writer = await connect(mqttUrl, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => writer.endAsync())
  const sent: string[] = []
  const sentQos1 = new Set<string>()
  for (let i = 0; i < 3000; i++) {
    // topics, sizes and contents vary: a cached encoding reused for the wrong message would show
    const topic = `gerrit/project-${i % 7}/${i % 3 === 0 ? 'change-merged' : 'comment-added'}`
    const payload = Buffer.alloc(4 + ((i * 37) % 3000), String.fromCharCode(33 + (i % 90)))
    payload.writeUInt32BE(i, payload.length - 4)
    const message = `${topic} ${payload.toString('base64')}`
    sent.push(message)
    // QoS 0 and 1 from the publisher: both reach QoS 0 subscriptions as QoS 0
    const qos = i % 5 === 0 ? 1 : 0
    if (qos === 1) sentQos1.add(message)
    writer.publish(topic, payload, { qos })
  }
  await waitFor('every subscriber to get all 3000', () => got.every(g => g.length >= sent.length), 30000)
  await sleep(200)
  // MQTT orders messages of one QoS [MQTT-4.6.0-6]; Aedes (and Mosquitto) may let a QoS 0
  // message overtake a QoS 1 one, so each QoS is compared on its own
  const ofQos = (messages: string[], one: boolean): string[] => messages.filter(m => sentQos1.has(m) === one)
  for (const [i, g] of got.entries()) {
    t.equal(g.length, sent.length, `subscriber ${i}: each message once`)
    t.same(ofQos(g, false), ofQos(sent, false), `subscriber ${i}: the QoS 0 messages whole and in order`)
    t.same(ofQos(g, true), ofQos(sent, true), `subscriber ${i}: the QoS 1 messages whole and in order`)
    t.same([...flags[i]!], ['qos0 retain=false dup=false'], `subscriber ${i}: delivered as QoS 0, not retained, not dup`)
  }
})

t.test('a retained message reaches a new subscriber with the retain flag, a live one without', async t => {
  const writer = await connect(mqttUrl, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => writer.endAsync())
  const live = await connect(mqttUrl)
  t.teardown(() => live.endAsync())
  const liveFlags: boolean[] = []
  live.on('message', (_topic, _payload, packet) => liveFlags.push(packet.retain))
  await live.subscribeAsync('gerrit/retained/#')
  await writer.publishAsync('gerrit/retained/a', 'kept', { qos: 1, retain: true })
  await waitFor('the live copy', () => liveFlags.length === 1)
  const late = await connect(mqttUrl)
  t.teardown(() => late.endAsync())
  const lateGot: Array<[string, boolean]> = []
  late.on('message', (topic, payload, packet) => lateGot.push([`${topic} ${payload.toString()}`, packet.retain]))
  await late.subscribeAsync('gerrit/retained/#')
  await waitFor('the retained copy', () => lateGot.length === 1)
  t.same(liveFlags, [false], 'live delivery: retain flag clear [MQTT-3.3.1-9]')
  t.same(lateGot, [['gerrit/retained/a kept', true]], 'delivery on subscribe: retain flag set [MQTT-3.3.1-8]')
})

t.test('over WebSocket a message is one frame holding exactly its PUBLISH, not one frame per chunk', async t => {
  const sub = await rawWebSocketSubscriber('gerrit/frames/#')
  t.teardown(sub.close)
  const writer = await connect(mqttUrl, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => writer.endAsync())
  await writer.publishAsync('gerrit/frames/one', Buffer.alloc(300, 'a'), { qos: 1 })
  await waitFor('a frame', () => sub.frames.length > 0)
  await sleep(200)
  t.equal(sub.frames.length, 1, 'one frame')
  const packets = wholePackets(sub.frames[0]!)
  t.equal(packets.length, 1, 'holding one packet')
  t.match(packets[0], { cmd: 'publish', topic: 'gerrit/frames/one', qos: 0 })
})

t.test('a burst reaches a WebSocket subscriber in fewer frames than messages, each frame whole packets', async t => {
  const sub = await rawWebSocketSubscriber('gerrit/burst/#')
  t.teardown(sub.close)
  const raw = await rawPublisher(t)
  const total = 500
  // one write: the broker reads the whole burst at once, as under load
  raw.write(Buffer.concat(Array.from({ length: total }, (_, i) =>
    mqttPacket.generate({ cmd: 'publish', topic: `gerrit/burst/${i}`, payload: Buffer.from(String(i)), qos: 0, retain: false, dup: false }))))
  const received = (): Packet[] => sub.frames.flatMap(wholePackets)
  await waitFor('the whole burst', () => received().length >= total, 10000)
  const topics = received().map(p => (p as { topic: string }).topic)
  t.same(topics, Array.from({ length: total }, (_, i) => `gerrit/burst/${i}`), 'all of it, in order')
  t.ok(sub.frames.length < total, `coalesced: ${total} messages in ${sub.frames.length} frames`)
})

t.test('frames of every length form (7-bit, 16-bit, 64-bit) reach a WebSocket subscriber whole', async t => {
  // a burst is written straight to the socket as one frame: its header is Firehose's
  const sub = await rawWebSocketSubscriber('gerrit/big/#')
  t.teardown(sub.close)
  const raw = await rawPublisher(t)
  // payload sizes around the boundaries, and 200 of 4 KiB in one read: frames well past 64 KiB
  const sizes = [1, 100, 125, 126, 127, 65535 - 20, 65536, 70000, ...Array.from({ length: 200 }, () => 4096)]
  raw.write(Buffer.concat(sizes.map((size, i) =>
    mqttPacket.generate({ cmd: 'publish', topic: `gerrit/big/${i}`, payload: Buffer.alloc(size, i % 256), qos: 0, retain: false, dup: false }))))
  const received = (): Packet[] => sub.frames.flatMap(wholePackets)
  await waitFor('the whole burst', () => received().length >= sizes.length, 10000)
  const got = received() as Array<{ topic: string, payload: Buffer }>
  t.same(got.map(p => p.topic), sizes.map((_, i) => `gerrit/big/${i}`), 'all of it, in order')
  t.ok(got.every((p, i) => p.payload.length === sizes[i] && p.payload.every(b => b === i % 256)), 'each payload whole')
  t.ok(sub.frames.some(f => f.length > 65535), `a frame past 64 KiB among ${sub.frames.length}`)
})

t.test('subscribers that vanish while retained messages are being sent to them do not bring the broker down', async t => {
  const writer = await connect(mqttUrl, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => writer.endAsync())
  for (let i = 0; i < 300; i++) writer.publish(`gerrit/kept/${i}`, Buffer.alloc(2000, 'k'), { qos: 0, retain: true })
  await writer.publishAsync('gerrit/kept/last', 'k', { qos: 1, retain: true })
  for (let round = 0; round < 100; round++) {
    const raw = await RawClient.open(broker.ports.mqtt)
    raw.send(connectPacket())
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'gerrit/kept/#', qos: 0 }] })
    await sleep(round % 8) // gone at different points of the retained stream
    raw.destroy()
  }
  await sleep(300)
  const reader = await connect(mqttUrl)
  t.teardown(() => reader.endAsync())
  let retained = 0
  reader.on('message', () => { retained++ })
  await reader.subscribeAsync('gerrit/kept/#')
  await waitFor('all 301 retained messages', () => retained === 301)
  t.equal(broker.exitCode, null, 'the broker is still running')
  for (let i = 0; i < 300; i++) writer.publish(`gerrit/kept/${i}`, '', { qos: 0, retain: true })
  await writer.publishAsync('gerrit/kept/last', '', { qos: 1, retain: true })
})
