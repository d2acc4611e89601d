import { appendFile, copyFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { collect, connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { makeCerts } from './helpers/certs.js'
import { FIREHOSE_BIN } from './helpers/repo.js'
import { sleep, waitFor } from './helpers/wait.js'

// SIGHUP reloads users and ACL (and certificates) without dropping connections.

const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
t.teardown(() => broker.stop())
const passwd = join(broker.dir, 'passwd')
const acl = join(broker.dir, 'acl')
const url = `mqtt://127.0.0.1:${broker.ports.mqtt}`

async function hup (): Promise<void> {
  const n = broker.logs.filter(l => l.event === 'broker.reloaded' || l.event === 'broker.reload-refused').length
  await broker.signal('SIGHUP')
  await waitFor('the reload', () => broker.logs.filter(l => l.event === 'broker.reloaded' || l.event === 'broker.reload-refused').length > n)
}

t.test('a user added with `firehose passwd` can publish after SIGHUP; connections stay up', async t => {
  const reader = await connect(url, { clientId: 'long-lived-reader' })
  t.teardown(() => reader.endAsync())
  const got = collect(reader)
  await reader.subscribeAsync('#')
  const ansibleBefore = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'ansible', '-P', 'pw-1', '-t', 'ansible/x', '-m', 'x'])
  t.not(ansibleBefore.code, 0, 'unknown before')

  const added = await run(process.execPath, [FIREHOSE_BIN, 'passwd', '--password-stdin', passwd, 'ansible'], 'pw-1\n')
  t.equal(added.code, 0, added.stderr)
  await appendFile(acl, '\nuser ansible\ntopic readwrite ansible/#\n')
  await hup()

  const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'ansible', '-P', 'pw-1', '-q', '1', '-t', 'ansible/playbook/1/action/start', '-m', 'go'])
  t.equal(ok.code, 0, ok.stderr)
  await waitFor('the reader to get it over its old connection', () => got.includes('ansible/playbook/1/action/start go'))
  t.ok(reader.connected, 'the reader was never disconnected')
})

t.test('an ACL change applies to connected clients at once', async t => {
  const bridge = await connect(url, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => bridge.endAsync())
  const sub = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'gerrit/#', '-v'])
  t.teardown(() => sub.stop())
  await waitFor('the subscriber', async () => {
    await bridge.publishAsync('gerrit/acl', 'before', { qos: 1 })
    return sub.lines.includes('gerrit/acl before')
  })
  await writeFile(acl, ACL.replace('topic readwrite gerrit/#', 'topic readwrite gerrit/only-this'))
  await hup()
  await bridge.publishAsync('gerrit/acl', 'after', { qos: 1 })
  await bridge.publishAsync('gerrit/only-this', 'allowed', { qos: 1 })
  await sub.waitForLine(l => l === 'gerrit/only-this allowed')
  t.notOk(sub.lines.includes('gerrit/acl after'), 'the narrowed ACL denies it on the same connection')
  t.ok(bridge.connected)
  await writeFile(acl, ACL)
  await hup()
})

t.test('a broken ACL file on reload is refused and the old rules stay', async t => {
  await writeFile(acl, ACL + '\nbogus line here\n')
  await hup()
  t.ok(broker.logs.some(l => l.event === 'broker.reload-refused' && JSON.stringify(l).includes('line')), 'the problem is logged with its line')
  const ok = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', 'gerrit/still', '-m', 'x'])
  t.equal(ok.code, 0)
  await writeFile(acl, ACL)
  await hup()
})

t.test('a user removed from the password file is disconnected on SIGHUP', async t => {
  const lp = await connect(url, { username: 'launchpad', password: USERS.launchpad })
  const closed = new Promise<void>(resolve => lp.once('close', () => resolve()))
  const removed = await run(process.execPath, [FIREHOSE_BIN, 'passwd', '--delete', passwd, 'launchpad'])
  t.equal(removed.code, 0, removed.stderr)
  await hup()
  await closed
  t.pass('disconnected')
  lp.end(true)
  await sleep(50)
})

t.test('SIGHUP reloads the TLS certificate; open TLS connections stay up', async t => {
  const tlsReader = await connect(`mqtts://localhost:${broker.ports.mqtts}`, { ca: await import('node:fs').then(fs => fs.readFileSync(broker.certs.ca)) })
  t.teardown(() => tlsReader.endAsync())
  const fresh = makeCerts(join(broker.dir, 'renewed'))
  await copyFile(fresh.cert, broker.certs.cert)
  await copyFile(fresh.key, broker.certs.key)
  await hup()
  const withNewCa = await run('mosquitto_sub', ['-h', 'localhost', '-p', String(broker.ports.mqtts), '--cafile', fresh.ca, '-t', '$SYS/broker/version', '-C', '1', '-W', '5'])
  t.equal(withNewCa.code, 0, `a new connection verifies against the new CA ${withNewCa.stderr}`)
  const withOldCa = await run('mosquitto_sub', ['-h', 'localhost', '-p', String(broker.ports.mqtts), '--cafile', broker.certs.ca, '-t', '$SYS/broker/version', '-C', '1', '-W', '5'])
  t.not(withOldCa.code, 0, 'and no longer against the old one')
  t.ok(tlsReader.connected, 'the connection opened before the reload is still up')
})
