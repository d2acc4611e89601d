import { readFileSync } from 'node:fs'
import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { collect, connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { waitFor } from './helpers/wait.js'

// mqtt.js, as a browser page uses it, over WebSocket and WebSocket/TLS, on / and /mqtt.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const ca = readFileSync(broker.certs.ca)

const cases = [
  { name: 'ws on /', url: `ws://127.0.0.1:${broker.ports.ws}/` },
  { name: 'ws on /mqtt', url: `ws://127.0.0.1:${broker.ports.ws}/mqtt` },
  { name: 'wss on /', url: `wss://localhost:${broker.ports.wss}/` },
  { name: 'wss on /mqtt', url: `wss://localhost:${broker.ports.wss}/mqtt` }
]

for (const { name, url } of cases) {
  for (const version of [4, 3] as const) {
    t.test(`${name}, MQTT ${version === 4 ? '3.1.1' : '3.1'}`, async t => {
      const options = version === 3 ? { protocolVersion: 3 as const, protocolId: 'MQIsdp' as const } : {}
      const tls = url.startsWith('wss') ? { ca } : {}
      const reader = await connect(url, { ...options, ...tls, clientId: `reader-${version}-${Math.random().toString(16).slice(2, 10)}` })
      const writer = await connect(url, { ...tls, username: 'gerrit', password: USERS.gerrit })
      t.teardown(async () => { await reader.endAsync(); await writer.endAsync() })
      const got = collect(reader)
      const granted = await reader.subscribeAsync('gerrit/#', { qos: 1 })
      t.equal(granted[0]?.qos, 1, 'subscription granted')
      await writer.publishAsync('gerrit/ws/test', `hello ${name}`, { qos: 1 })
      await waitFor('the message', () => got.length > 0)
      t.same(got, [`gerrit/ws/test hello ${name}`])
    })
  }
}

t.test('the mqttv3.1 subprotocol is accepted too', async t => {
  const { WebSocket } = await import('ws')
  const ws = new WebSocket(`ws://127.0.0.1:${broker.ports.ws}/`, ['mqttv3.1'])
  const protocol = await new Promise<string>((resolve, reject) => {
    ws.once('open', () => resolve(ws.protocol))
    ws.once('error', reject)
  })
  t.equal(protocol, 'mqttv3.1')
  ws.close()
})

t.test('a plain HTTP request gets a helpful 426, not a hang (/ is the viewer: test/viewer.test.ts)', async t => {
  const res = await fetch(`http://127.0.0.1:${broker.ports.ws}/mqtt`)
  t.equal(res.status, 426)
  t.match(await res.text(), /MQTT client over WebSocket/)
})

t.test('anonymous publish over WebSocket is dropped and the client stays connected', async t => {
  const reader = await connect(`ws://127.0.0.1:${broker.ports.ws}/mqtt`)
  const anon = await connect(`ws://127.0.0.1:${broker.ports.ws}/mqtt`)
  t.teardown(async () => { await reader.endAsync(); await anon.endAsync() })
  const got = collect(reader)
  await reader.subscribeAsync('#')
  await anon.publishAsync('gerrit/forged', 'x', { qos: 1 })
  await anon.publishAsync('gerrit/forged', 'y', { qos: 0 })
  const writer = await connect(`ws://127.0.0.1:${broker.ports.ws}/mqtt`, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => writer.endAsync())
  await writer.publishAsync('gerrit/real', 'z', { qos: 1 })
  await waitFor('the real message', () => got.includes('gerrit/real z'))
  t.notOk(got.some(m => m.startsWith('gerrit/forged')), 'the anonymous publish reached nobody')
  t.ok(anon.connected, 'the anonymous client is still connected')
  const granted = await anon.subscribeAsync('gerrit/#')
  t.equal(granted[0]?.qos, 0, 'and still served')
})
