import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'

// mosquitto_sub and mosquitto_pub, Debian's mosquitto-clients, over TCP and TLS with --cafile.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())

const pub = (args: string[]) => run('mosquitto_pub', ['-h', '127.0.0.1', ...args])

t.test('a bridge user publishes; anonymous mosquitto_sub reads over TCP and over TLS', async t => {
  const tcp = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', '#', '-v'])
  const tls = new MosquittoSub(['-h', 'localhost', '-p', String(broker.ports.mqtts), '--cafile', broker.certs.ca, '-t', '#', '-v'])
  t.teardown(() => { tcp.stop(); tls.stop() })
  // subscriptions are in place once a probe message arrives at both
  for (let i = 0; tcp.lines.length === 0 || tls.lines.length === 0; i++) {
    const r = await pub(['-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-t', 'gerrit/probe', '-m', String(i)])
    t.equal(r.code, 0, 'probe published')
    await new Promise(resolve => setTimeout(resolve, 100))
    if (i > 100) throw new Error('subscribers never received the probe')
  }
  tcp.lines.length = 0
  tls.lines.length = 0
  const r = await pub(['-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', 'gerrit/openstack/nova/comment-added', '-m', '{"type":"comment-added"}'])
  t.equal(r.code, 0, r.stderr)
  t.equal(await tcp.waitForLine(l => l.startsWith('gerrit/openstack/nova/')), 'gerrit/openstack/nova/comment-added {"type":"comment-added"}')
  t.equal(await tls.waitForLine(l => l.startsWith('gerrit/openstack/nova/')), 'gerrit/openstack/nova/comment-added {"type":"comment-added"}')
})

t.test('TLS: the server certificate verifies against the CA, and a client without it is refused', async t => {
  const ok = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(broker.ports.mqtts), '--cafile', broker.certs.ca, '-u', 'gerrit', '-P', USERS.gerrit, '-t', 'gerrit/tls', '-m', 'x'])
  t.equal(ok.code, 0, ok.stderr)
  const bad = await run('mosquitto_pub', ['-h', 'localhost', '-p', String(broker.ports.mqtts), '--capath', '/nonexistent', '-t', 'gerrit/tls', '-m', 'x'])
  t.not(bad.code, 0, 'no trusted CA: handshake fails')
  const old = await run('openssl', ['s_client', '-connect', `127.0.0.1:${broker.ports.mqtts}`, '-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'], '')
  t.match(old.stdout, /Cipher is \(NONE\)/, 'TLS 1.1: no cipher negotiated')
  t.match(old.stdout, /no peer certificate available/, 'TLS 1.1: no certificate sent')
  const modern = await run('openssl', ['s_client', '-connect', `127.0.0.1:${broker.ports.mqtts}`, '-tls1_2', '-CAfile', broker.certs.ca], '')
  t.match(modern.stdout, /Protocol\s*:\s*TLSv1\.2/, 'TLS 1.2 is accepted')
  t.match(modern.stdout, /Verify return code: 0 \(ok\)/, 'and the certificate verifies against the CA')
})

t.test('a bridge user is refused outside its prefix; the publish is dropped and counted', async t => {
  const sub = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'launchpad/#', '-t', 'gerrit/marker', '-v'])
  t.teardown(() => sub.stop())
  await new Promise(resolve => setTimeout(resolve, 300))
  const before = await broker.metric('firehose_publish_denied_total')
  const denied = await pub(['-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', 'launchpad/nova/new/1', '-m', 'forged'])
  t.equal(denied.code, 0, 'acknowledged like Mosquitto does for MQTT 3.1.1')
  await pub(['-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', 'gerrit/marker', '-m', 'after'])
  await sub.waitForLine(l => l === 'gerrit/marker after')
  t.same(sub.lines, ['gerrit/marker after'], 'the forged launchpad event never arrived')
  t.equal(await broker.metric('firehose_publish_denied_total'), before + 1, 'counted')
  const lp = await pub(['-p', String(broker.ports.mqtt), '-u', 'launchpad', '-P', USERS.launchpad, '-q', '1', '-t', 'launchpad/nova/new/1', '-m', 'real'])
  t.equal(lp.code, 0, lp.stderr)
  await sub.waitForLine(l => l === 'launchpad/nova/new/1 real')
})

t.test('wrong password and unknown user get CONNACK 5/4 refusals', async t => {
  const wrong = await pub(['-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', 'nope', '-t', 'gerrit/x', '-m', 'x'])
  t.not(wrong.code, 0)
  t.match(wrong.stderr, /bad user name or password|not authori[sz]ed/i)
  const unknown = await pub(['-p', String(broker.ports.mqtt), '-u', 'mallory', '-P', 'x', '-t', 'gerrit/x', '-m', 'x'])
  t.not(unknown.code, 0)
  t.notOk(JSON.stringify(broker.logs).includes('nope'), 'the password is not logged')
})
