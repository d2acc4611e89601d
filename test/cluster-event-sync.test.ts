import t from 'tap'
import { connectAsync, type MqttClient } from 'mqtt'
import { BrokerProcess } from './helpers/broker-process.js'
import { httpApi, readHistory, type HistoryEntry } from './helpers/http-api.js'
import { connect } from './helpers/mqtt.js'
import { freePort } from './helpers/ports.js'
import { RedisServer } from './helpers/redis.js'
import { sleep, waitFor } from './helpers/wait.js'
import { windowsOf } from './helpers/windows.js'

// Event sync on a cluster: two broker processes on Debian's redis-server. One node runs the
// rules (a lock in Redis); events, HTTP events and rules made through the API reach it from
// either node; the running node is SIGKILLed while events flow, the other takes over, and every
// completed window's combined event is in the shared journal once.

const USERS = { infra: 'infra-secret', alice: 'alice-secret', root: 'root-secret' }
type User = keyof typeof USERS
const ACL = 'user infra\ntopic readwrite gerrit/#\ntopic readwrite eventsync/#\n\nuser alice\ntopic read gerrit/#\ntopic read eventsync/#\n\nuser root\ntopic read #\n'
const PERIOD_S = 1
const RULE = { name: 'deploys', trigger: { type: 'window', observationPeriod: PERIOD_S }, endpoints: [{ eventKey: 'x', topic: 'gerrit/+/x' }, { eventKey: 'y' }] }
const redis = await RedisServer.start(await freePort())
const nodeConfig = (name: string): Record<string, unknown> => ({
  persistence: undefined,
  cluster: { redis: redis.url, node: name, heartbeatInterval: 1 },
  journal: { topics: ['#'] },
  eventSync: [RULE]
})
const nodes = await Promise.all(['a', 'b'].map(async n => await BrokerProcess.start({ users: USERS, acl: ACL, config: nodeConfig(`node-${n}`) }))) as [BrokerProcess, BrokerProcess]
t.teardown(async () => {
  await Promise.all(nodes.map(async node => await node.stop()))
  await redis.destroy()
})
const api = (node: BrokerProcess) => httpApi<User>(() => `http://127.0.0.1:${node.ports.ws}`, USERS)

/** The node that runs the rules, by what GET .../state says on either node, and the other one. */
async function roles (): Promise<{ runner: BrokerProcess, standby: BrokerProcess }> {
  const name = await waitFor('a node running the rules', async () => {
    const state = await api(nodes[0])('root', 'GET', '/v1/event-sync/deploys/state')
    return typeof state.json?.node === 'string' ? state.json.node as string : undefined
  }, 20_000, 200)
  const runner = nodes.find(n => nodes.indexOf(n) === (name.startsWith('node-a') ? 0 : 1))!
  return { runner, standby: nodes.find(n => n !== runner)! }
}

interface Output { triggerOffset: number, eventID: string, events: Record<string, { events: Array<{ content: string }> }> }
const outputsIn = (entries: readonly HistoryEntry[]): Output[] => entries.filter(e => e.topic === 'eventsync/deploys' && e.user === undefined).map(e => e.payload as Output)

t.test('events on the node that does not run the rules, MQTT and HTTP: one combined event; the state is the same on both nodes', async t => {
  const { runner, standby } = await roles()
  const sub = await connect(`mqtt://127.0.0.1:${runner.ports.mqtt}`, { username: 'alice', password: USERS.alice })
  t.teardown(() => sub.end(true))
  const got: Output[] = []
  sub.on('message', (_topic, payload) => got.push(JSON.parse(payload.toString()) as Output))
  await sub.subscribeAsync('eventsync/deploys', { qos: 1 })
  const pub = await connect(`mqtt://127.0.0.1:${standby.ports.mqtt}`, { username: 'infra', password: USERS.infra })
  t.teardown(() => pub.end(true))
  await pub.publishAsync('gerrit/nova/x', 'merged', { qos: 1 })
  const posted = await api(standby)('infra', 'POST', '/v1/event-sync/deploys/event/y', 'deployed', { 'content-type': 'text/plain' })
  t.equal(posted.status, 202, posted.text)
  await waitFor('the combined event', () => got.length > 0)
  await sleep(500)
  t.equal(got.length, 1)
  t.same(Object.values(got[0]!.events).map(l => l.events.map(e => e.content)), [['merged'], ['deployed']])
  const onRunner = (await api(runner)('root', 'GET', '/v1/event-sync/deploys/state')).json
  t.match(onRunner, { triggers: { window: 1 }, pending: 0 })
  // the standby answers what the running node last wrote (every second)
  const onStandby = await waitFor('the standby\'s view to catch up', async () => {
    const state = (await api(standby)('root', 'GET', '/v1/event-sync/deploys/state')).json
    return state?.triggers?.window === 1 ? state : undefined
  }, 5000, 200)
  t.equal(onStandby.node, onRunner.node, 'both name the node that runs it')
})

t.test('a rule made through the API on one node runs on the running node; deleted from the other', async t => {
  const { runner, standby } = await roles()
  const made = await api(standby)('alice', 'POST', '/v1/event-sync', { name: 'alices', trigger: { type: 'none', observationPeriod: 60 }, endpoints: [{ eventKey: 'k' }] })
  t.equal(made.status, 201, made.text)
  t.equal((await api(runner)('alice', 'POST', '/v1/event-sync', { name: 'alices', trigger: { type: 'none', observationPeriod: 60 }, endpoints: [{ eventKey: 'k' }] })).status, 409, 'the name is taken cluster-wide')
  await waitFor('the rule running', async () => typeof (await api(standby)('alice', 'GET', '/v1/event-sync/alices/state')).json?.node === 'string', 5000, 200)
  t.equal((await api(runner)('alice', 'POST', '/v1/event-sync/alices/event/k', 'one')).status, 202, 'its owner posts on the other node')
  await waitFor('the event held', async () => (await api(standby)('alice', 'GET', '/v1/event-sync/alices/state')).json?.endpoints?.k?.events === 1, 5000, 200)
  t.equal((await api(runner)('alice', 'DELETE', '/v1/event-sync/alices')).status, 204)
  await waitFor('gone on both nodes', async () => (await api(standby)('alice', 'GET', '/v1/event-sync/alices')).status === 404 && (await api(runner)('alice', 'GET', '/v1/event-sync/alices')).status === 404, 5000, 200)
})

t.test('the running node SIGKILLed while events flow: the other takes over; every window\'s combined event once', async t => {
  const { runner, standby } = await roles()
  // events to the node that survives, both kinds, from a publisher that never reconnects
  let client: MqttClient | undefined = await connectAsync(`mqtt://127.0.0.1:${standby.ports.mqtt}`, { username: 'infra', password: USERS.infra, reconnectPeriod: 0 })
  t.teardown(() => client?.end(true))
  const flow = { stop: false, sent: 0 }
  const publishing = (async () => {
    while (!flow.stop) {
      const batch = Array.from({ length: 10 }, () => {
        const n = flow.sent++
        return client!.publishAsync(n % 4 === 3 ? 'eventsync/deploys/event/y' : `gerrit/p${n % 3}/x`, String(n), { qos: 1 })
      })
      await Promise.all(batch)
      await sleep(10)
    }
  })()
  await sleep(1500)
  await runner.signal('SIGKILL')
  const killedAt = Date.now()
  await waitFor('the other node to run the rules', () => standby.logs.find(l => l.event === 'eventsync.running' && (l.time as number) > killedAt - 1000), 15_000, 200)
  await sleep(1500)
  flow.stop = true
  await publishing
  client.end(true)
  client = undefined
  t.ok(flow.sent > 500, `${flow.sent} events published`)
  await waitFor('nothing pending', async () => (await api(standby)('root', 'GET', '/v1/event-sync/deploys/state')).json?.pending === 0, 15_000, 300)
  await sleep(1000)
  const entries = await readHistory(api(standby), 'root', ['gerrit/+/x', 'eventsync/deploys/#'])
  const fromTheStart = entries.filter(e => e.offset > 0)
  const expected = windowsOf(fromTheStart, [topic => /^gerrit\/[^/]+\/x$/.test(topic), topic => topic === 'eventsync/deploys/event/y'], PERIOD_S * 1000)
  const outputs = outputsIn(fromTheStart)
  t.ok(expected.length > 100, `${expected.length} windows completed`)
  t.same(outputs.map(o => o.triggerOffset), expected, 'every completed window published once, in order, across the take-over')
  t.equal(new Set(outputs.map(o => o.eventID)).size, outputs.length, 'no duplicate eventID')
  await runner.launch()
})
