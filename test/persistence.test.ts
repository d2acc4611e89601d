import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { connectPacket, RawClient } from './helpers/raw.js'
import { waitFor } from './helpers/wait.js'

// Retained messages and persistent sessions survive a broker restart, on the embedded store.

/** documented: a single broker publishes a previous run's wills within 4 heartbeats of 2.5 s (10 s), with room for a loaded machine */
const WILL_BOUND_S = 20
const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const pub = (args: string[]) => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, ...args])

t.test('a retained message and a persistent session\'s queued QoS 1 and 2 messages survive a restart', async t => {
  t.equal((await pub(['-q', '1', '-r', '-t', 'firehose/bridges/gerrit', '-m', '{"state":"connected"}'])).code, 0)

  // a persistent session (clean session 0) subscribes at QoS 1 and goes away: its first line,
  // the retained bridge status, comes once it is subscribed (a "ready" published right after
  // starting mosquitto_sub could reach the broker before its SUBSCRIBE: seen once in CI)
  const first = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-i', 'durable-reader', '-c', '-q', '2', '-t', 'gerrit/#', '-t', 'firehose/bridges/gerrit', '-v', '-C', '1'])
  t.same(await first.waitForLines(1), ['firehose/bridges/gerrit {"state":"connected"}'])
  t.equal(await first.exited(), 0)

  // while it is away, two events are queued for it
  t.equal((await pub(['-q', '1', '-t', 'gerrit/openstack/nova/patchset-created', '-m', 'one'])).code, 0)
  t.equal((await pub(['-q', '2', '-t', 'gerrit/openstack/nova/change-merged', '-m', 'two'])).code, 0)

  await broker.restart()

  const retained = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'firehose/bridges/+', '-v', '-C', '1', '-W', '10'])
  t.same(await retained.waitForLines(1), ['firehose/bridges/gerrit {"state":"connected"}'], 'retained message after restart')

  const again = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-i', 'durable-reader', '-c', '-q', '2', '-t', 'gerrit/#', '-v', '-C', '2', '-W', '10'])
  t.same(await again.waitForLines(2), ['gerrit/openstack/nova/patchset-created one', 'gerrit/openstack/nova/change-merged two'], 'queued QoS 1 and QoS 2 messages, in order, after restart')
  t.equal(await again.exited(), 0)
})

t.test('after SIGKILL too: what was acknowledged is not lost', async t => {
  t.equal((await pub(['-q', '1', '-r', '-t', 'gerrit/last-known', '-m', 'before-crash'])).code, 0)
  await broker.signal('SIGKILL')
  await broker.launch()
  const retained = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'gerrit/last-known', '-v', '-C', '1', '-W', '10'])
  t.same(await retained.waitForLines(1), ['gerrit/last-known before-crash'])
})

t.test('the will of a client of the previous run goes out within seconds of a restart after SIGKILL', async t => {
  const raw = await RawClient.open(broker.ports.mqtt)
  raw.send(connectPacket({ clientId: 'will-across-restart', username: 'gerrit', password: Buffer.from(USERS.gerrit), will: { topic: 'gerrit/wills/across-restart', payload: Buffer.from('gone'), qos: 1, retain: true } }))
  await waitFor('the CONNACK', () => raw.packets.some(p => p.cmd === 'connack'))
  await broker.signal('SIGKILL') // the will is stored; its client is gone with the broker
  raw.destroy()
  await broker.launch()
  const started = Date.now()
  // retained, so a reader that subscribes late still sees it
  const wills = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'gerrit/wills/#', '-v'])
  t.teardown(() => wills.stop())
  await wills.waitForLines(1, (WILL_BOUND_S + 5) * 1000)
  const after = (Date.now() - started) / 1000
  t.same(wills.lines, ['gerrit/wills/across-restart gone'])
  t.ok(after <= WILL_BOUND_S, `published ${after.toFixed(1)} s after the restart (bound ${WILL_BOUND_S} s)`)
})
