import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { collect, connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { connectPacket, RawClient } from './helpers/raw.js'
import { sleep, waitFor } from './helpers/wait.js'

// Every message a subscriber is entitled to reaches it, whatever else the broker is doing
// with the same message: storing it for a persistent session, storing it as retained, or
// sending Aedes' own $SYS notices next to it. (The default configuration: LevelDB persistence.)

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const host = ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt)]
const asGerrit = ['-u', 'gerrit', '-P', USERS.gerrit]

t.test('a QoS 1 burst reaches every subscriber, all of it, while a persistent QoS 1 subscriber is connected', async t => {
  const persistent = new MosquittoSub([...host, '-i', 'burst-persistent', '-c', '-q', '1', '-t', 'gerrit/o/#', '-v'])
  const plain = new MosquittoSub([...host, '-t', 'gerrit/o/#', '-v'])
  t.teardown(() => { persistent.stop(); plain.stop() })
  await sleep(500)
  const expected: string[] = []
  for (let round = 0; round < 10; round++) {
    const lines = Array.from({ length: 40 }, (_, i) => `${round}-${i}`)
    expected.push(...lines.map(l => `gerrit/o/x ${l}`))
    const r = await run('mosquitto_pub', [...host, ...asGerrit, '-q', '1', '-t', 'gerrit/o/x', '-l'], lines.join('\n') + '\n')
    t.equal(r.code, 0, `round ${round} published`)
    await sleep(100)
  }
  await waitFor('every message at both subscribers', () => persistent.lines.length >= 400 && plain.lines.length >= 400, 15000).catch(() => {})
  t.same(plain.lines, expected, 'the plain subscriber got all 400, in order')
  t.same(persistent.lines, expected, 'the persistent subscriber got all 400, in order')
})

t.test('a retained message published right before a plain one reaches a live subscriber', async t => {
  const sub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`)
  t.teardown(() => sub.endAsync())
  const got = collect(sub)
  await sub.subscribeAsync('gerrit/#', { qos: 1 })
  for (const qos of [0, 1, 2] as const) {
    const pub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
    for (let i = 0; i < 30; i++) {
      pub.publish(`gerrit/r${qos}`, `${i}`, { qos, retain: true })
      pub.publish(`gerrit/n${qos}`, `${i}`, { qos })
      await sleep(30)
    }
    await waitFor(`the plain QoS ${qos} messages`, () => got.filter(m => m.startsWith(`gerrit/n${qos} `)).length === 30).catch(() => {})
    await sleep(300)
    await pub.endAsync()
    t.equal(got.filter(m => m.startsWith(`gerrit/r${qos} `)).length, 30, `all 30 retained QoS ${qos} messages reached the live subscriber`)
  }
})

t.test('wills reach a subscriber that also holds $SYS/#', async t => {
  const sub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`)
  t.teardown(() => sub.endAsync())
  const got = collect(sub)
  await sub.subscribeAsync({ '#': { qos: 1 }, '$SYS/#': { qos: 1 } })
  for (let i = 0; i < 3; i++) {
    const raw = await RawClient.open(broker.ports.mqtt)
    raw.send(connectPacket({ clientId: `will-${i}`, username: 'gerrit', password: Buffer.from(USERS.gerrit), will: { topic: 'gerrit/will', payload: Buffer.from(`gone ${i}`), qos: 1, retain: false } }))
    await waitFor('the CONNACK', () => raw.packets.some(p => p.cmd === 'connack'))
    raw.destroy() // no DISCONNECT: the will fires
  }
  await waitFor('the three wills', () => got.filter(m => m.startsWith('gerrit/will ')).length === 3).catch(() => {})
  t.same(got.filter(m => m.startsWith('gerrit/will ')).sort(), ['gerrit/will gone 0', 'gerrit/will gone 1', 'gerrit/will gone 2'])
})

t.test('a QoS 2 message reaches QoS 1 subscriptions at QoS 1, wildcards included [MQTT-3.8.4-6]', async t => {
  const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`
  const filters = ['gerrit/+', 'gerrit/#', 'gerrit/q2', '#']
  const received: Array<{ filter: string, qos: number }> = []
  for (const filter of filters) {
    const sub = await connect(url)
    t.teardown(() => sub.endAsync())
    sub.on('message', (topic, _payload, packet) => { if (topic === 'gerrit/q2') received.push({ filter, qos: packet.qos }) })
    await sub.subscribeAsync(filter, { qos: 1 })
  }
  const zero = await connect(url)
  t.teardown(() => zero.endAsync())
  zero.on('message', (topic, _payload, packet) => { if (topic === 'gerrit/q2') received.push({ filter: 'gerrit/# at QoS 0', qos: packet.qos }) })
  await zero.subscribeAsync('gerrit/#', { qos: 0 })
  const pub = await connect(url, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => pub.endAsync())
  await pub.publishAsync('gerrit/q2', 'x', { qos: 2 })
  await waitFor('five deliveries', () => received.length === 5)
  t.same(received.sort((a, b) => a.filter.localeCompare(b.filter)), [
    { filter: '#', qos: 1 },
    { filter: 'gerrit/#', qos: 1 },
    { filter: 'gerrit/# at QoS 0', qos: 0 },
    { filter: 'gerrit/+', qos: 1 },
    { filter: 'gerrit/q2', qos: 1 }
  ])
})

// One client, overlapping subscriptions of different QoS: each message once, at the highest QoS
// of the matching subscriptions [MQTT-3.3.5-1], whichever subscription the broker tries first —
// a QoS 0 subscription's delivery must not go first at QoS 0 (the other would be a repeat).
for (const [first, clean] of [['#', true], ['gerrit/#', true], ['#', false]] as const) {
  t.test(`overlapping subscriptions at QoS 0 and 1 (${first} subscribed first${clean ? '' : ', persistent session'}): each message once, at QoS 1 [MQTT-3.3.5-1]`, async t => {
    const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`
    const sub = await connect(url, clean ? {} : { clientId: 'overlap-persistent', clean: false })
    t.teardown(() => sub.endAsync())
    const got: string[] = []
    sub.on('message', (topic, payload, packet) => { if (topic.startsWith('gerrit/overlap')) got.push(`${payload.toString()} qos${packet.qos}`) })
    for (const filter of first === '#' ? ['#', 'gerrit/#'] : ['gerrit/#', '#']) await sub.subscribeAsync(filter, { qos: filter === '#' ? 0 : 1 })
    const pub = await connect(url, { username: 'gerrit', password: USERS.gerrit })
    t.teardown(() => pub.endAsync())
    for (const qos of [2, 1, 0] as const) await pub.publishAsync('gerrit/overlap', `at ${qos}`, { qos })
    await waitFor('three deliveries', () => got.length >= 3)
    await sleep(300)
    t.same(got, ['at 2 qos1', 'at 1 qos1', 'at 0 qos0'])
  })
}

t.test('a CONNECT with will QoS 3 is refused [MQTT-3.1.2-14], and nobody else is disturbed', async t => {
  const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`
  const sub = await connect(url)
  t.teardown(() => sub.endAsync())
  let closed = 0
  sub.on('close', () => { closed++ })
  await sub.subscribeAsync('gerrit/#', { qos: 1 })
  const bytes = mqttPacket.generate(connectPacket({ clientId: 'will-qos-3', username: 'gerrit', password: Buffer.from(USERS.gerrit), will: { topic: 'gerrit/w', payload: Buffer.from('gone'), qos: 1, retain: false } }) as never)
  const flags = bytes.indexOf(Buffer.from('MQTT')) + 5
  bytes[flags] = bytes[flags]! | 0x18 // will QoS bits 3-4 set: QoS 3
  const raw = await RawClient.open(broker.ports.mqtt)
  raw.write(bytes)
  await waitFor('the connection to be closed', () => raw.closed)
  t.notOk(raw.packets.some(p => p.cmd === 'connack' && p.returnCode === 0), 'no CONNACK 0')
  await sleep(300)
  t.equal(closed, 0, 'the subscriber is still connected')
  t.equal(sub.connected, true)
})
