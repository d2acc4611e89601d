import t from 'tap'
import { connect as mqttConnect, type IConnackPacket } from 'mqtt'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { sleep, waitFor } from './helpers/wait.js'

// Offline persistent sessions are bounded: at most limits.maxQueuedMessages kept for one (the
// oldest go, counted), and an anonymous client's session expires after limits.sessionExpiry; a
// user's after limits.userSessionExpiry (never, by default). Checked live and across a restart.

const MAX = 100
const EXPIRY = 4 // seconds
const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { sysInterval: 1, limits: { maxQueuedMessages: MAX, sessionExpiry: EXPIRY } } })
t.teardown(() => broker.stop())
const url = (): string => `mqtt://127.0.0.1:${broker.ports.mqtt}`

async function publish (topic: string, count: number): Promise<void> {
  const pub = await connect(url(), { username: 'gerrit', password: USERS.gerrit })
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, async (_, j) => await pub.publishAsync(topic, String(i + j), { qos: 1 })))
  await pub.endAsync()
}

/** A persistent session's messages on reconnecting, until none comes for half a second. */
async function drain (clientId: string, options: Record<string, unknown> = {}): Promise<{ got: string[], sessionPresent: boolean }> {
  const c = mqttConnect(url(), { clientId, clean: false, reconnectPeriod: 0, ...options })
  const got: string[] = []
  c.on('message', (_topic, payload) => got.push(payload.toString()))
  const connack = await new Promise<IConnackPacket>((resolve, reject) => { c.once('connect', resolve); c.once('error', reject) })
  const sessionPresent = connack.sessionPresent
  let seen = -1
  while (seen !== got.length) {
    seen = got.length
    await sleep(500)
  }
  await c.endAsync()
  return { got, sessionPresent }
}

t.test(`an anonymous session on # offline for 1,500 messages keeps the newest ${MAX}, in order; the rest counted as dropped`, async t => {
  const c = await connect(url(), { clientId: 'anon-hoarder', clean: false })
  await c.subscribeAsync('#', { qos: 1 })
  await c.endAsync()
  await publish('gerrit/flood', 1500)
  const { got } = await drain('anon-hoarder', { resubscribe: false })
  const floods = got.filter(p => /^\d+$/.test(p))
  t.same(floods, Array.from({ length: MAX }, (_, i) => String(1500 - MAX + i)), `the newest ${MAX}, in order`)
  t.equal(await broker.metric('firehose_queued_messages_dropped_total'), 1500 - MAX, 'the dropped ones counted')
  const sys = await connect(url())
  t.teardown(() => sys.endAsync())
  const seen: string[] = []
  sys.on('message', (topic, payload) => { if (topic === '$SYS/broker/store/messages/dropped') seen.push(payload.toString()) })
  await sys.subscribeAsync('$SYS/broker/store/messages/dropped')
  await waitFor('$SYS/broker/store/messages/dropped', () => seen.includes(String(1500 - MAX)), 5000)
})

t.test('a connected persistent session is not capped: it is being delivered to', async t => {
  const c = await connect(url(), { clientId: 'anon-online', clean: false })
  const got: string[] = []
  c.on('message', (_topic, payload) => got.push(payload.toString()))
  await c.subscribeAsync('gerrit/online', { qos: 1 })
  await publish('gerrit/online', 300)
  await waitFor('every message', () => got.length >= 300)
  await c.endAsync()
  t.equal(got.length, 300)
})

t.test(`an anonymous session offline past limits.sessionExpiry (${EXPIRY} s) is removed, counted; a user's stays (never, by default)`, async t => {
  const anon = await connect(url(), { clientId: 'anon-expiring', clean: false })
  await anon.subscribeAsync('gerrit/expiry', { qos: 1 })
  await anon.endAsync()
  const user = await connect(url(), { clientId: 'user-kept', clean: false, username: 'gerrit', password: USERS.gerrit })
  await user.subscribeAsync('gerrit/expiry', { qos: 1 })
  await user.endAsync()
  await publish('gerrit/expiry', 5)
  const expired = await broker.metric('firehose_sessions_expired_total')
  await waitFor('the anonymous session expired', () => broker.logs.some(l => l.event === 'session.expired' && l.clientId === 'anon-expiring'), 15_000)
  t.ok(await broker.metric('firehose_sessions_expired_total') > expired, 'counted')
  t.notOk(broker.logs.some(l => l.event === 'session.expired' && l.clientId === 'user-kept'), 'the user\'s session is not')
  const back = await drain('anon-expiring')
  t.same(back, { got: [], sessionPresent: false }, 'reconnecting: no session, nothing queued')
  const kept = await drain('user-kept', { username: 'gerrit', password: USERS.gerrit })
  t.same(kept, { got: ['0', '1', '2', '3', '4'], sessionPresent: true }, 'the user\'s session and its queue')
})

t.test('across a restart: a session offline when the broker stopped expires on schedule, and the limits hold', async t => {
  const anon = await connect(url(), { clientId: 'anon-restart', clean: false })
  await anon.subscribeAsync('gerrit/restart', { qos: 1 })
  await anon.endAsync()
  await publish('gerrit/restart', MAX + 50)
  await broker.restart()
  // still within its expiry after the restart: kept, capped
  const { got } = await drain('anon-restart', { resubscribe: false })
  t.same(got, Array.from({ length: MAX }, (_, i) => String(50 + i)), `the newest ${MAX}, across the restart`)
  await broker.signal('SIGTERM')
  await sleep(EXPIRY * 1000 + 500)
  await broker.launch()
  await waitFor('expired at start', () => broker.logs.some(l => l.event === 'session.expired' && l.clientId === 'anon-restart'), 10_000)
  t.same(await drain('anon-restart'), { got: [], sessionPresent: false })
})

t.test('a session connected when the broker is killed is offline from the next start, and expires', async t => {
  const c = await connect(url(), { clientId: 'anon-crashed', clean: false })
  await c.subscribeAsync('gerrit/crash', { qos: 1 })
  await broker.signal('SIGKILL')
  c.end(true)
  await broker.launch()
  await waitFor('expired after the crash', () => broker.logs.some(l => l.event === 'session.expired' && l.clientId === 'anon-crashed'), 15_000)
  t.same(await drain('anon-crashed'), { got: [], sessionPresent: false })
})

t.test('a clean session discards the previous session\'s queue at once [MQTT-3.1.2-6]', async t => {
  // Aedes dropped it one message at a time while "delivering" it to the clean client: one that
  // went away at once left the rest to the next persistent session under that id
  for (let round = 0; round < 3; round++) {
    const id = `reused-${round}`
    const old = await connect(url(), { clientId: id, clean: false })
    await old.subscribeAsync('gerrit/reused', { qos: 1 })
    await old.endAsync()
    await publish('gerrit/reused', 80)
    const clean = await connect(url(), { clientId: id, clean: true })
    await clean.endAsync()
    const again = await connect(url(), { clientId: id, clean: false })
    await again.subscribeAsync(`gerrit/reused-${round}`, { qos: 1 })
    await again.endAsync()
    await publish(`gerrit/reused-${round}`, 50)
    t.same((await drain(id, { resubscribe: false })).got, Array.from({ length: 50 }, (_, i) => String(i)), `round ${round}: the new session's 50, none of the old 80`)
  }
})
