import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'

// Retained messages and persistent sessions survive a broker restart, on the embedded store.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const pub = (args: string[]) => run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, ...args])

t.test('a retained message and a persistent session\'s queued QoS 1 and 2 messages survive a restart', async t => {
  t.equal((await pub(['-q', '1', '-r', '-t', 'firehose/bridges/gerrit', '-m', '{"state":"connected"}'])).code, 0)

  // a persistent session (clean session 0) subscribes at QoS 1 and goes away
  const first = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-i', 'durable-reader', '-c', '-q', '2', '-t', 'gerrit/#', '-v', '-C', '1'])
  t.equal((await pub(['-q', '1', '-t', 'gerrit/ready', '-m', 'ready'])).code, 0)
  await first.waitForLines(1)
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
