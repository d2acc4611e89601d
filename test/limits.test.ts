import { Agent as HttpAgent, get as httpGet } from 'node:http'
import { connect as netConnect } from 'node:net'
import mqttPacket from 'mqtt-packet'
import t, { type Test } from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { connectPacket, RawClient } from './helpers/raw.js'
import { waitFor } from './helpers/wait.js'

// Hostile input is refused while the broker keeps serving everyone else.

const broker = await BrokerProcess.start({
  users: USERS,
  acl: ACL,
  config: { limits: { maxPacketSize: 65536, connectTimeout: 1, maxConnectionsPerIp: 20, maxConnections: 1000 } }
})
t.teardown(() => broker.stop())

// one long-lived subscriber that must keep receiving throughout
const witness = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'gerrit/witness', '-v'])
t.teardown(() => witness.stop())
let seq = 0
async function stillServing (t: Test): Promise<void> {
  const n = ++seq
  for (let i = 0; i < 50; i++) {
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-t', 'gerrit/witness', '-m', String(n)])
    try {
      await witness.waitForLine(l => l === `gerrit/witness ${n}`, 200)
      t.pass('the broker still serves other clients')
      return
    } catch {}
  }
  t.fail('the witness subscriber stopped receiving')
}

t.test('malformed packets close only their own connection', async t => {
  const garbage = await RawClient.open(broker.ports.mqtt)
  garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  await waitFor('garbage connection to close', () => garbage.closed)
  const badLength = await RawClient.open(broker.ports.mqtt)
  badLength.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f]))
  await waitFor('five-byte remaining length to close', () => badLength.closed)
  const badConnect = await RawClient.open(broker.ports.mqtt)
  badConnect.write(Buffer.from([0x10, 0x04, 0x00, 0x02, 0x41, 0x41]))
  await waitFor('truncated CONNECT to close', () => badConnect.closed)
  const publishFirst = await RawClient.open(broker.ports.mqtt)
  publishFirst.send({ cmd: 'publish', topic: 'gerrit/x', payload: 'x', qos: 0 })
  await waitFor('PUBLISH before CONNECT to close', () => publishFirst.closed)
  await stillServing(t)
})

t.test('an oversized packet is refused as soon as its header announces it', async t => {
  const before = await broker.metric('firehose_packets_refused_total')
  const raw = await RawClient.open(broker.ports.mqtt)
  raw.send(connectPacket({ username: 'gerrit', password: Buffer.from(USERS.gerrit) }))
  await waitFor('CONNACK', () => raw.packets.length > 0)
  // a PUBLISH announcing 2 MiB; only the header is sent
  raw.write(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x01]))
  await waitFor('the oversized connection to close', () => raw.closed)
  t.equal(await broker.metric('firehose_packets_refused_total'), before + 1, 'counted')
  const big = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', 'gerrit/witness', '-m', 'x'.repeat(70000)])
  t.not(big.code, 0, 'mosquitto_pub with a 70 kB payload is cut off before its PUBACK')
  t.equal(await broker.metric('firehose_packets_refused_total'), before + 2, 'counted')
  const fine = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', 'gerrit/big', '-m', 'x'.repeat(60000)])
  t.equal(fine.code, 0, 'a 60 kB payload under the limit passes')
  await stillServing(t)
  t.notOk(witness.lines.some(l => l.length > 65536), 'the oversized publish reached no one')
})

t.test('an oversized WebSocket frame is refused', async t => {
  const { WebSocket } = await import('ws')
  const ws = new WebSocket(`ws://127.0.0.1:${broker.ports.ws}/mqtt`, ['mqtt'])
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const closed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))
  ws.send(Buffer.alloc(70000))
  t.equal(await closed, 1009, 'closed with 1009 (message too big)')
  await stillServing(t)
})

t.test('over WebSocket, an oversized packet in small frames is refused as soon as its header announces it', async t => {
  const before = await broker.metric('firehose_packets_refused_total')
  const { WebSocket } = await import('ws')
  const ws = new WebSocket(`ws://127.0.0.1:${broker.ports.ws}/mqtt`, ['mqtt'])
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  const replies: Buffer[] = []
  ws.on('message', (data: Buffer) => replies.push(data))
  const closed = new Promise<void>(resolve => ws.once('close', () => resolve()))
  ws.send(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'ws-oversized', keepalive: 0, username: 'gerrit', password: Buffer.from(USERS.gerrit) }))
  await waitFor('CONNACK', () => replies.length > 0)
  // a PUBLISH announcing 2 MiB, each frame far below the frame limit
  ws.send(Buffer.from([0x30, 0x80, 0x80, 0x80, 0x01]))
  await closed
  t.equal(await broker.metric('firehose_packets_refused_total'), before + 1, 'counted')
  await stillServing(t)
})

t.test('a socket that never sends CONNECT is closed after limits.connectTimeout', async t => {
  const started = Date.now()
  const silent = await RawClient.open(broker.ports.mqtt)
  await waitFor('the silent socket to be closed', () => silent.closed, 5000)
  t.ok(Date.now() - started >= 900, 'not before the timeout')
  const tlsSilent = await RawClient.open(broker.ports.mqtts)
  await waitFor('the silent TLS socket to be closed', () => tlsSilent.closed, 5000)
  const wsSilent = await RawClient.open(broker.ports.ws)
  wsSilent.write(Buffer.from('GET /mqtt HTTP/1.1\r\n'))
  await waitFor('the half-sent HTTP request to be closed', () => wsSilent.closed, 5000)
  await stillServing(t)
})

t.test('an HTTP keep-alive connection that makes requests is not cut at limits.connectTimeout (Node\'s request and idle timeouts apply)', async t => {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const get = async (): Promise<{ status: number, reused: boolean }> => await new Promise((resolve, reject) => {
    const req = httpGet({ host: '127.0.0.1', port: broker.ports.ws, path: '/v1/journal', agent }, res => {
      res.resume()
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }) })
    })
    req.on('error', reject)
  })
  t.equal((await get()).status, 200)
  // past the connect timeout (1 s), within Node's keep-alive timeout (5 s): the same socket serves again
  await new Promise(resolve => setTimeout(resolve, 1600))
  const again = await get()
  t.equal(again.status, 200)
  t.equal(again.reused, true, 'on the same connection')
})

t.test('a topic with 101 levels is refused', async t => {
  const topic = Array.from({ length: 101 }, (_, i) => `l${i}`).join('/')
  const sub = await RawClient.open(broker.ports.mqtt)
  sub.send(connectPacket())
  await waitFor('CONNACK', () => sub.packets.length > 0)
  sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos: 0 }] })
  await waitFor('the subscriber to be disconnected', () => sub.closed)
  t.notOk(sub.packets.some(p => p.cmd === 'suback' && (p as { granted: number[] }).granted[0] !== 128), 'never granted')
  const pub = await RawClient.open(broker.ports.mqtt)
  pub.send(connectPacket({ username: 'gerrit', password: Buffer.from(USERS.gerrit) }))
  await waitFor('CONNACK', () => pub.packets.length > 0)
  pub.send({ cmd: 'publish', topic: `gerrit/${topic}`, payload: 'x', qos: 1, messageId: 7 })
  await waitFor('the publisher to be disconnected', () => pub.closed)
  t.notOk(pub.packets.some(p => p.cmd === 'puback'), 'never acknowledged')
  const ok100 = Array.from({ length: 99 }, (_, i) => `l${i}`).join('/')
  const fine = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', `gerrit/${ok100}`, '-m', 'x'])
  t.equal(fine.code, 0, '100 levels are fine')
  await stillServing(t)
})

t.test('a connection flood from one address is refused past limits.maxConnectionsPerIp', async t => {
  const before = await broker.metric('firehose_connections_refused_total')
  const open = (await broker.metrics()).split('\n').filter(l => l.startsWith('firehose_connections{')).reduce((n, l) => n + Number(l.split(' ')[1]), 0)
  const sockets = await Promise.all(Array.from({ length: 60 }, async () => {
    const s = netConnect({ port: broker.ports.mqtt, host: '127.0.0.1' })
    s.on('error', () => {})
    await new Promise(resolve => s.once('connect', resolve))
    return s
  }))
  const expected = 60 - (20 - open)
  const refused = await waitFor(`${expected} refusals to be counted`, async () => {
    const n = await broker.metric('firehose_connections_refused_total') - before
    return n >= expected && n
  })
  t.equal(refused, expected, `exactly 20 connections admitted from one address (${open} were already open)`)
  for (const s of sockets) s.destroy()
  await waitFor('the flood sockets to be released', async () => (await broker.metric('firehose_connections', '{listener="mqtt:' + broker.ports.mqtt + '"}')) <= 2)
  await stillServing(t)
})

t.test('thousands of publishes to a topic nobody reads, in one write behind a burst to one somebody reads: handled, no stack overflow', async t => {
  // the witness holds delivery slots for the first burst; the rest queue in mqemitter, which
  // drained its queue by recursion and overflowed the stack (aedes/mqemitter-drain-loop.ts)
  const publisher = await RawClient.open(broker.ports.mqtt)
  t.teardown(() => publisher.destroy())
  publisher.send(connectPacket({ username: 'gerrit', password: Buffer.from(USERS.gerrit) }))
  await waitFor('the CONNACK', () => publisher.packets.some(p => p.cmd === 'connack'))
  const received = await broker.metric('firehose_messages_received_total')
  const packets: Buffer[] = []
  for (let i = 0; i < 200; i++) packets.push(mqttPacket.generate({ cmd: 'publish', topic: 'gerrit/witness', payload: Buffer.from('burst'), qos: 0, retain: false, dup: false }))
  // small packets, so one read holds thousands of them
  for (let i = 0; i < 20000; i++) packets.push(mqttPacket.generate({ cmd: 'publish', topic: 'gerrit/b', payload: Buffer.alloc(0), qos: 0, retain: false, dup: false }))
  publisher.write(Buffer.concat(packets))
  await waitFor('every publish to be received', async () => await broker.metric('firehose_messages_received_total') - received === 20200, 20000)
  t.equal(broker.exitCode, null, 'the broker is running')
  await stillServing(t)
})
