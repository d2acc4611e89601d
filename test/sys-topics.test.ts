import t from 'tap'
import { SYS_REFRESH_INTERVALS } from '@firehose/broker'
import { BrokerProcess } from './helpers/broker-process.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { waitFor } from './helpers/wait.js'

// $SYS/broker/... under Mosquitto's names, as a statsd forwarder reads them.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())

const REQUIRED = [
  'version', 'uptime', 'clients/total', 'clients/connected', 'subscriptions/count', 'heap/current',
  'messages/received', 'messages/sent', 'load/messages/received/1min', 'load/messages/sent/1min',
  'load/bytes/received/1min', 'load/bytes/sent/1min', 'load/publish/dropped/1min'
]

t.test('every $SYS/broker topic a Mosquitto consumer reads arrives, with sensible values', async t => {
  const sys = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', '$SYS/#', '-v'])
  t.teardown(() => sys.stop())
  // traffic, so the counters and loads move
  for (let i = 0; i < 5; i++) {
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-t', 'gerrit/sys', '-m', String(i)])
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'gerrit/denied', '-m', String(i)])
  }
  const latest = (suffix: string): string | undefined =>
    sys.lines.filter(l => l.startsWith(`$SYS/broker/${suffix} `)).pop()?.slice(`$SYS/broker/${suffix} `.length)
  const ready = (): boolean => REQUIRED.every(s => latest(s) !== undefined) &&
    Number(latest('load/publish/dropped/1min')) > 0 && Number(latest('load/messages/received/1min')) > 0 &&
    Number(latest('messages/received')) >= 10 && Number(latest('subscriptions/count')) >= 1 && Number(latest('clients/connected')) >= 1
  await waitFor('every required topic, with load figures above zero', ready, 15000).catch((err: Error) => {
    throw new Error(`${err.message}; latest: ${JSON.stringify(Object.fromEntries(REQUIRED.map(s => [s, latest(s)])))}`)
  })
  t.match(latest('version'), /^firehose version \d+\.\d+\.\d+$/)
  t.match(latest('uptime'), /^\d+ seconds$/)
  t.ok(Number(latest('clients/connected')) >= 1, 'at least this subscriber is connected')
  t.ok(Number(latest('subscriptions/count')) >= 1)
  t.ok(Number(latest('heap/current')) > 1e6)
  t.ok(Number(latest('messages/received')) >= 10, 'ten publishes received, allowed or not')
  t.ok(Number(latest('load/bytes/received/1min')) > 0)
  for (const s of REQUIRED) t.ok(latest(s), `$SYS/broker/${s}`)
  t.notOk(sys.lines.some(l => /^\$SYS\/(?!broker\/)/.test(l)), 'Aedes\' internal $SYS/<id>/... traffic (client ids) is not shown')
})

t.test('they are retained: a new subscriber gets them at once', async t => {
  const late = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', '$SYS/broker/version', '-v', '-C', '1', '-W', '5'])
  t.match((await late.waitForLines(1, 3000))[0], /^\$SYS\/broker\/version firehose version/)
})

t.test('every value is published again now and then, changed or not, so no subscriber keeps a stale one', async t => {
  // `version` never changes: after the retained copy, it comes again live (sysInterval 1 s here)
  const seconds = SYS_REFRESH_INTERVALS * 2 + 5
  const sub = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', '$SYS/broker/version', '-v', '-C', '2', '-W', String(seconds)])
  const lines = await sub.waitForLines(2, seconds * 1000)
  t.equal(lines.length, 2)
  t.ok(lines.every(l => /^\$SYS\/broker\/version firehose version/.test(l)), 'the unchanged value, twice')
})

t.test('a plain # subscription does not receive $SYS [MQTT-4.7.2-1]', async t => {
  const all = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', '#', '-v'])
  t.teardown(() => all.stop())
  await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-t', 'gerrit/after', '-m', 'x'])
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.notOk(all.lines.some(l => l.startsWith('$')), 'no $SYS through #')
})
