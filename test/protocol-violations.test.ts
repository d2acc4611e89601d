import t, { type Test } from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { collect, connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { connectPacket, RawClient } from './helpers/raw.js'
import { sleep, waitFor } from './helpers/wait.js'

// Packets that break MQTT 3.1.1 where the parser Aedes uses is lenient, written byte by byte
// (a client library would not send them): each closes the connection, as Mosquitto does, and is
// logged and counted; nothing of it reaches a subscriber.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`

/** A UTF-8 string field: two length bytes, then the bytes as given. */
const field = (bytes: Buffer | string): Buffer => {
  const body = typeof bytes === 'string' ? Buffer.from(bytes) : bytes
  return Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body])
}
/** A packet: its first byte, the remaining length (one byte: these are small), the body. */
const packet = (first: number, ...body: Buffer[]): Buffer => {
  const rest = Buffer.concat(body)
  if (rest.length > 127) throw new Error('test packets are small')
  return Buffer.concat([Buffer.from([first, rest.length]), rest])
}
const id = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff])
/** CONNECT with the given level, flags byte and payload fields. */
const rawConnect = (level: number, flags: number, ...payload: Buffer[]): Buffer =>
  packet(0x10, field('MQTT'), Buffer.from([level, flags, 0, 60]), ...payload)

async function violations (): Promise<number> {
  return await broker.metric('firehose_protocol_violations_total')
}

/** A connection that completed CONNECT as `user` (or anonymously). */
async function connected (user?: keyof typeof USERS): Promise<RawClient> {
  const raw = await RawClient.open(broker.ports.mqtt)
  raw.send(connectPacket(user === undefined ? {} : { username: user, password: Buffer.from(USERS[user]) }))
  await waitFor('CONNACK', () => raw.packets.some(p => p.cmd === 'connack'))
  t.equal((raw.packets[0] as { returnCode?: number }).returnCode, 0)
  return raw
}

/**
 * Sends `bytes` on `raw` and expects the connection closed, with a log line naming `reason`
 * and the counter one up; `expectNoReply` lists packets that must not come back.
 */
async function closedFor (t: Test, raw: RawClient, bytes: Buffer, reason: RegExp, expectNoReply: string[]): Promise<void> {
  const before = await violations()
  const since = broker.logs.length
  const logged = waitFor(`the violation logged (${reason.source})`, () => broker.logs.slice(since).find(line => line.event === 'client.protocol-violation' && reason.test(String(line.reason))))
  const replies = raw.packets.length
  raw.write(bytes)
  await waitFor('the connection closed', () => raw.closed)
  await logged
  t.same(raw.packets.slice(replies).filter(p => expectNoReply.includes(p.cmd)).map(p => p.cmd), [], `no ${expectNoReply.join(' or ')}`)
  t.equal(await violations(), before + 1, 'counted')
}

t.test('PUBLISH topics with U+0000, bytes that are not UTF-8, or an encoded surrogate: the connection is closed, nothing is forwarded [MQTT-1.5.3-1/2]', async t => {
  const sub = await connect(url)
  t.teardown(() => sub.endAsync())
  const got = collect(sub)
  await sub.subscribeAsync('gerrit/#', { qos: 1 })
  const topics: Array<[string, Buffer, RegExp]> = [
    ['U+0000', Buffer.from('gerrit/a\u0000b'), /U\+0000/],
    ['bytes that are not UTF-8', Buffer.concat([Buffer.from('gerrit/'), Buffer.from([0xff, 0xfe])]), /not well-formed UTF-8/],
    ['an encoded surrogate (U+D800)', Buffer.concat([Buffer.from('gerrit/'), Buffer.from([0xed, 0xa0, 0x80])]), /not well-formed UTF-8/],
    ['a truncated sequence', Buffer.concat([Buffer.from('gerrit/'), Buffer.from([0xe2, 0x82])]), /not well-formed UTF-8/]
  ]
  for (const [what, topic, reason] of topics) {
    const raw = await connected('gerrit')
    // the packet for U+0000: 320f000a6765727269742f610062000c78 (QoS 1, packet id 12, payload "x")
    await closedFor(t, raw, packet(0x32, field(topic), id(12), Buffer.from('x')), reason, ['puback'])
    t.pass(`closed for ${what}`)
  }
  // a well-formed U+FFFD (EF BF BD) is a character like any other
  const fine = await connected('gerrit')
  fine.write(packet(0x32, field('gerrit/\uFFFD'), id(13), Buffer.from('ok')))
  await waitFor('PUBACK', () => fine.packets.some(p => p.cmd === 'puback'))
  fine.destroy()
  await waitFor('the delivery', () => got.length === 1)
  await sleep(200)
  t.same(got, ['gerrit/\uFFFD ok'], 'only the well-formed topic reached the subscriber')
})

t.test('a client id or a topic filter that is not UTF-8 closes the connection', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  await closedFor(t, raw, rawConnect(4, 0x02, field(Buffer.from([0x63, 0xc3]))), /not well-formed UTF-8/, ['connack'])
  const sub = await connected()
  await closedFor(t, sub, packet(0x82, id(5), field(Buffer.from([0x61, 0x2f, 0xc0, 0xaf])), Buffer.from([0])), /not well-formed UTF-8/, ['suback'])
})

t.test('an unknown protocol level gets CONNACK 1, then the connection is closed [MQTT-3.1.2-2]', async t => {
  for (const level of [9, 2, 0x89]) {
    const raw = await RawClient.open(broker.ports.mqtt)
    raw.write(rawConnect(level, 0x02, field('level-test')))
    await waitFor('the connection closed', () => raw.closed)
    t.match(raw.packets, [{ cmd: 'connack', returnCode: 1 }], `level ${level}: CONNACK 1`)
  }
})

t.test('a password without a user name closes the connection, without CONNACK [MQTT-3.1.2-22]', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  await closedFor(t, raw, rawConnect(4, 0x42, field('pw-only'), field('secret')), /password without a user name/, ['connack'])
})

t.test('packet id 0 in PUBLISH QoS 1 and in SUBSCRIBE closes the connection [MQTT-2.3.1-1]', async t => {
  const sub = await connect(url)
  t.teardown(() => sub.endAsync())
  const got = collect(sub)
  await sub.subscribeAsync('gerrit/#', { qos: 1 })
  const pub = await connected('gerrit')
  await closedFor(t, pub, packet(0x32, field('gerrit/zero'), id(0), Buffer.from('x')), /packet id 0/, ['puback'])
  const raw = await connected()
  await closedFor(t, raw, packet(0x82, id(0), field('gerrit/#'), Buffer.from([0])), /packet id 0/, ['suback'])
  await sleep(200)
  t.same(got, [], 'nothing forwarded')
})

t.test('SUBSCRIBE and UNSUBSCRIBE without a topic filter close the connection [MQTT-3.8.3-3, MQTT-3.10.3-2]', async t => {
  const a = await connected()
  await closedFor(t, a, packet(0xa2, id(7)), /UNSUBSCRIBE with no topic filter/, ['unsuback'])
  const b = await connected()
  await closedFor(t, b, packet(0x82, id(8)), /SUBSCRIBE with no topic filter|no payload/, ['suback'])
})

t.test('well-formed clients are untouched: the checks refuse nothing a library sends', async t => {
  const pub = await connect(url, { username: 'gerrit', password: USERS.gerrit, clientId: 'ünïcode-id-✓' })
  const sub = await connect(url, { clientId: 'sub-😀' })
  t.teardown(async () => { await pub.endAsync(); await sub.endAsync() })
  const got = collect(sub)
  await sub.subscribeAsync(['gerrit/ü/#', 'gerrit/日本/+'], { qos: 1 })
  await pub.publishAsync('gerrit/ü/x', 'a', { qos: 1 })
  await pub.publishAsync('gerrit/日本/y', 'b', { qos: 0 })
  await sub.unsubscribeAsync('gerrit/ü/#')
  await waitFor('both', () => got.length === 2)
  t.same([...got].sort(), ['gerrit/ü/x a', 'gerrit/日本/y b'].sort())
})
