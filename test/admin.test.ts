import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { collect, connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { waitFor } from './helpers/wait.js'

// The admin HTTP server: Prometheus /metrics and /healthz, on loopback.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())

t.test('/healthz', async t => {
  const res = await fetch(`http://127.0.0.1:${broker.ports.admin}/healthz`)
  t.equal(res.status, 200)
  const body = await res.json() as { ok: boolean, listeners: unknown[] }
  t.equal(body.ok, true)
  t.equal(body.listeners.length, 4)
})

t.test('/metrics counts connections per listener, messages, ACL drops and bytes', async t => {
  const tcp = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`)
  const ws = await connect(`ws://127.0.0.1:${broker.ports.ws}/mqtt`)
  const writer = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(async () => { await tcp.endAsync(); await ws.endAsync(); await writer.endAsync() })
  const got = collect(ws)
  await ws.subscribeAsync('gerrit/#')
  await writer.publishAsync('gerrit/metrics', 'x'.repeat(1000), { qos: 1 })
  await tcp.publishAsync('gerrit/denied', 'x', { qos: 1 })
  await waitFor('delivery', () => got.length === 1)

  t.equal(await broker.metric('firehose_connections', `{listener="mqtt:${broker.ports.mqtt}"}`), 2)
  t.equal(await broker.metric('firehose_connections', `{listener="ws:${broker.ports.ws}"}`), 1)
  t.equal(await broker.metric('firehose_connections', `{listener="wss:${broker.ports.wss}"}`), 0)
  t.equal(await broker.metric('firehose_clients_connected'), 3)
  t.equal(await broker.metric('firehose_messages_received_total'), 2)
  t.equal(await broker.metric('firehose_messages_sent_total'), 1)
  t.equal(await broker.metric('firehose_publish_denied_total'), 1)
  t.ok(await broker.metric('firehose_bytes_received_total') > 1000)
  t.ok(await broker.metric('firehose_bytes_sent_total') > 1000)
  t.match(await broker.metrics(), /firehose_process_resident_memory_bytes/)
})

t.test('only GET; unknown paths are 404', async t => {
  t.equal((await fetch(`http://127.0.0.1:${broker.ports.admin}/nope`)).status, 404)
  t.equal((await fetch(`http://127.0.0.1:${broker.ports.admin}/metrics`, { method: 'POST' })).status, 405)
})
