import { Redis } from 'ioredis'
import { connect as mqttConnect, type IConnackPacket } from 'mqtt'
import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { freePort } from './helpers/ports.js'
import { RedisServer } from './helpers/redis.js'
import { sleep, waitFor } from './helpers/wait.js'

// The session limits (limits.maxQueuedMessages, limits.sessionExpiry) and a clean session
// discarding the previous one's queue, on the two stores besides LevelDB (session-limits.test.ts):
// in memory (`persistence: false`) and on a cluster, where a session connects to one node while
// messages are queued for it on another, and its node may die.

const MAX = 50
const EXPIRY = 3 // seconds
const HEARTBEAT = 1
const limits = { maxQueuedMessages: MAX, sessionExpiry: EXPIRY }
const url = (node: BrokerProcess): string => `mqtt://127.0.0.1:${node.ports.mqtt}`

async function publish (node: BrokerProcess, topic: string, count: number): Promise<void> {
  const pub = await connect(url(node), { username: 'gerrit', password: USERS.gerrit })
  for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, async (_, j) => await pub.publishAsync(topic, String(i + j), { qos: 1 })))
  await pub.endAsync()
}

/** A persistent session's messages on reconnecting, until none comes for half a second. */
async function drain (node: BrokerProcess, clientId: string, options: Record<string, unknown> = {}): Promise<{ got: string[], sessionPresent: boolean }> {
  const c = mqttConnect(url(node), { clientId, clean: false, reconnectPeriod: 0, resubscribe: false, ...options })
  const got: string[] = []
  c.on('message', (_topic, payload) => got.push(payload.toString()))
  const connack = await new Promise<IConnackPacket>((resolve, reject) => { c.once('connect', resolve); c.once('error', reject) })
  let seen = -1
  while (seen !== got.length) {
    seen = got.length
    await sleep(500)
  }
  await c.endAsync()
  return { got, sessionPresent: connack.sessionPresent }
}

/** A persistent session subscribed to `topic` at QoS 1, gone offline. */
async function leave (node: BrokerProcess, clientId: string, topic: string, options: Record<string, unknown> = {}): Promise<void> {
  const c = await connect(url(node), { clientId, clean: false, ...options })
  await c.subscribeAsync(topic, { qos: 1 })
  await c.endAsync()
}

const range = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, i) => String(from + i))
const total = async (nodes: BrokerProcess[], metric: string): Promise<number> => (await Promise.all(nodes.map(async n => await n.metric(metric)))).reduce((a, b) => a + b, 0)

/** The same checks on a store; `publisher` queues, `reader` is where the sessions connect (another node on a cluster). */
function limitsHold (name: string, nodes: () => { publisher: BrokerProcess, reader: BrokerProcess, all: BrokerProcess[] }): void {
  t.test(`${name}: an offline session keeps the newest ${MAX}, in order; the rest counted as dropped`, async t => {
    const { publisher, reader, all } = nodes()
    await leave(reader, `${name}-hoarder`, 'gerrit/cap')
    await publish(publisher, 'gerrit/cap', 300)
    t.same((await drain(reader, `${name}-hoarder`)).got, range(300 - MAX, 300))
    t.equal(await total(all, 'firehose_queued_messages_dropped_total'), 300 - MAX, 'counted')
  })

  t.test(`${name}: a connected session is not capped, wherever its messages are queued`, async t => {
    const { publisher, reader } = nodes()
    const c = await connect(url(reader), { clientId: `${name}-online`, clean: false })
    const got: string[] = []
    c.on('message', (_topic, payload) => got.push(payload.toString()))
    await c.subscribeAsync('gerrit/online', { qos: 1 })
    await publish(publisher, 'gerrit/online', 300)
    await waitFor('every message', () => got.length >= 300)
    await c.endAsync()
    t.same(got, range(0, 300))
  })

  t.test(`${name}: a clean session discards the previous session's queue [MQTT-3.1.2-6]`, async t => {
    const { publisher, reader } = nodes()
    const id = `${name}-reused`
    await leave(reader, id, 'gerrit/reused')
    await publish(publisher, 'gerrit/reused', MAX)
    // connected and gone at once: the old queue must not outlive it. (Stock Aedes passed this on
    // these two stores — in memory its replay clears the queue within one turn, on Redis the list
    // was deleted with the subscriptions, its messages left behind: the check after these
    // tests. The store where the bug showed, LevelDB, is in session-limits.test.ts.)
    const clean = await connect(url(reader), { clientId: id, clean: true })
    await clean.endAsync()
    await leave(reader, id, 'gerrit/reused')
    await publish(publisher, 'gerrit/reused', 20)
    t.same((await drain(reader, id)).got, range(0, 20), 'the new session\'s messages, none of the old')
  })

  t.test(`${name}: an anonymous session offline past limits.sessionExpiry is removed, counted; a user's stays`, async t => {
    const { publisher, reader, all } = nodes()
    const expiredLines = (id: string): number => all.flatMap(n => n.logs).filter(l => l.event === 'session.expired' && l.clientId === id).length
    const before = await total(all, 'firehose_sessions_expired_total')
    await leave(reader, `${name}-expiring`, 'gerrit/expiry')
    await leave(reader, `${name}-user`, 'gerrit/expiry', { username: 'gerrit', password: USERS.gerrit })
    await publish(publisher, 'gerrit/expiry', 5)
    await waitFor('the anonymous session expired', () => expiredLines(`${name}-expiring`) > 0, 15_000)
    t.ok(await total(all, 'firehose_sessions_expired_total') > before, 'counted')
    t.same(await drain(reader, `${name}-expiring`), { got: [], sessionPresent: false }, 'no session, nothing queued')
    t.same(await drain(reader, `${name}-user`, { username: 'gerrit', password: USERS.gerrit }), { got: range(0, 5), sessionPresent: true }, 'the user\'s session and its queue')
    t.equal(expiredLines(`${name}-expiring`), 1, 'removed once, by one node')
    t.equal(expiredLines(`${name}-user`), 0, 'the user\'s never')
  })
}

// in memory
const memory = await BrokerProcess.start({ users: USERS, acl: ACL, config: { persistence: false, limits } })
t.teardown(async () => await memory.stop())
limitsHold('memory', () => ({ publisher: memory, reader: memory, all: [memory] }))

// a cluster of two nodes on Redis
const redis = await RedisServer.start(await freePort())
const db = new Redis(redis.url)
const nodeConfig = (node: string): Record<string, unknown> => ({ persistence: undefined, cluster: { redis: redis.url, node, heartbeatInterval: HEARTBEAT }, limits })
const [a, b] = await Promise.all(['a', 'b'].map(async n => await BrokerProcess.start({ users: USERS, acl: ACL, config: nodeConfig(`node-${n}`) }))) as [BrokerProcess, BrokerProcess]
t.teardown(async () => {
  db.disconnect()
  await Promise.all([a, b].map(async node => await node.stop()))
  await redis.destroy()
})
limitsHold('cluster', () => ({ publisher: a, reader: b, all: [a, b] }))

t.test('cluster: every message a session let go is gone from Redis (no packet left behind)', async t => {
  t.same(await db.keys('packet:*'), [], 'no stored message once every queue is drained, trimmed or discarded')
})

t.test('cluster: a session its node left connected when it died is offline from then, and expires', async t => {
  const c = await connect(url(b), { clientId: 'cluster-orphan', clean: false })
  await c.subscribeAsync('gerrit/orphan', { qos: 1 })
  const expired = await a.metric('firehose_sessions_expired_total')
  await b.signal('SIGKILL')
  c.end(true)
  await publish(a, 'gerrit/orphan', MAX + 10)
  await a.waitForLog('the orphan expired', l => l.event === 'session.expired' && l.clientId === 'cluster-orphan', 20_000)
  t.ok(await a.metric('firehose_sessions_expired_total') > expired, 'counted on the surviving node')
  t.equal(a.logs.filter(l => l.event === 'session.expired' && l.clientId === 'cluster-orphan').length, 1, 'once')
  t.same(await db.keys('packet:*'), [], 'its queue let go with it')
  t.same(await drain(a, 'cluster-orphan'), { got: [], sessionPresent: false })
})
