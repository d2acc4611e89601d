import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BridgeProcess } from './helpers/bridge-process.js'
import { BrokerProcess } from './helpers/broker-process.js'
import { matchesCatalogue } from './helpers/schemas.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { freePort } from './helpers/ports.js'
import { REPO } from './helpers/repo.js'
import { waitFor } from './helpers/wait.js'

// Real Ansible (Debian's ansible-core) runs local playbooks with the Firehose callback
// plugin; the receiver publishes through the real broker to mosquitto_sub.

const FIXTURES = join(REPO, 'packages/ansible-bridge/test/fixtures')
const PLUGIN = join(REPO, 'packages/ansible-bridge/plugin/callback')
const TOKEN = 'a-token-of-sufficient-length'
const dir = await mkdtemp(join(tmpdir(), 'firehose-ansible-'))
const broker = await BrokerProcess.start({ users: { ...USERS, ansible: 'ansible-secret' }, acl: ACL + '\nuser ansible\ntopic readwrite ansible/#\ntopic readwrite firehose/bridges/ansible\n' })
const port = await freePort()
const receiver = await BridgeProcess.write('ansible', join(dir, 'ansible-bridge.yaml'), {
  name: 'ansible',
  mqtt: { urls: [`mqtt://127.0.0.1:${broker.ports.mqtt}`], username: 'ansible', password: 'ansible-secret' },
  outbox: { dir: join(dir, 'outbox') },
  backoff: { initial: 0.2, max: 1 },
  log: { level: 'debug' },
  ansible: { listen: { host: '127.0.0.1', port }, token: TOKEN, maxBodyBytes: 65536 }
})
await receiver.start()
const sub = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'ansible/#', '-v'])
t.teardown(async () => {
  sub.stop()
  await receiver.signal('SIGKILL')
  await broker.stop()
})

interface Run { code: number | null, ms: number, output: string }
async function playbook (name: string, withPlugin = true, spool = join(dir, 'spool.jsonl')): Promise<Run> {
  const started = Date.now()
  const env = {
    ...process.env,
    ANSIBLE_NOCOLOR: '1',
    ANSIBLE_HOST_KEY_CHECKING: 'False',
    ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp'),
    ...(withPlugin
      ? { ANSIBLE_CALLBACK_PLUGINS: PLUGIN, ANSIBLE_CALLBACKS_ENABLED: 'firehose', FIREHOSE_URL: `http://127.0.0.1:${port}/events`, FIREHOSE_TOKEN: TOKEN, FIREHOSE_SPOOL: spool, FIREHOSE_RETRY_AFTER: '0' }
      : {})
  }
  return await new Promise<Run>(resolve => {
    const child = spawn('ansible-playbook', ['-i', join(FIXTURES, 'inventory.ini'), join(FIXTURES, name)], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', d => { output += String(d) })
    child.stderr.on('data', d => { output += String(d) })
    child.on('close', code => resolve({ code, ms: Date.now() - started, output }))
  })
}

type Message = { topic: string, payload: Record<string, unknown> }
const messages = (): Message[] => sub.lines.map(l => ({ topic: l.slice(0, l.indexOf(' ')), payload: JSON.parse(l.slice(l.indexOf(' ') + 1)) as Record<string, unknown> }))
/** The messages of one run, by its playbook id, in arrival order. */
function runOf (playbookName: string): Message[] {
  const start = messages().find(m => m.topic.endsWith('/action/start') && m.payload.playbook_name === playbookName)
  return start === undefined ? [] : messages().filter(m => m.payload.playbook_id === start.payload.playbook_id)
}
async function finished (playbookName: string): Promise<Message[]> {
  await waitFor(`the finish of "${playbookName}"`, () => runOf(playbookName).some(m => m.topic.includes('/action/finish/')), 20000)
  return runOf(playbookName)
}
const shape = (run: Message[]): string[] => run.map(m => m.topic.replace(/^ansible\/playbook\/[0-9a-f-]{36}\//, ''))

t.test('a passing playbook: start, every task, stats, finish OK, with the original payload fields', async t => {
  const r = await playbook('pass.yml')
  t.equal(r.code, 0, r.output)
  const run = await finished('a passing play')
  t.same(shape(run), ['action/start', 'task/localhost/OK', 'task/localhost/OK', 'stats/localhost', 'action/finish/OK'])
  const [start, hello, , stats] = run
  t.match(start!.topic, /^ansible\/playbook\/[0-9a-f-]{36}\/action\/start$/)
  t.match(start!.payload, { status: 'OK', ansible_type: 'start', playbook_name: 'a passing play', host: String, session: String })
  t.match(hello!.payload, { status: 'OK', ansible_type: 'task', ansible_task: 'TASK: say hello', ansible_host: 'localhost', ansible_result: { rc: 0, stdout: 'hello' } })
  t.equal(typeof hello!.payload.ansible_result, 'object', 'the result is an object, not a JSON string inside JSON')
  t.same(stats!.payload.stats, { ok: 2, changed: 1, unreachable: 0, failures: 0, skipped: 0, rescued: 0, ignored: 0 })
})

t.test('a failing task and an unreachable host: FAILED and UNREACHABLE, finish FAILED', async t => {
  const r = await playbook('fail.yml')
  t.equal(r.code, 4, 'ansible-playbook exits 4 (unreachable hosts) as it does without the plugin')
  const run = await finished('a failing play')
  const topics = shape(run)
  t.ok(topics.includes('task/ghost/UNREACHABLE'))
  t.ok(topics.includes('task/localhost/FAILED'))
  t.equal(topics.at(-1), 'action/finish/FAILED')
  t.match(run.find(m => m.topic.endsWith('/stats/ghost'))!.payload.stats, { unreachable: 1 })
})

t.test('no_log results are censored', async t => {
  t.equal((await playbook('nolog.yml')).code, 0)
  const run = await finished('secrets stay secret')
  t.notOk(JSON.stringify(run).includes('s3cr3t-value'), 'the secret is nowhere in what was published')
  t.match(run.find(m => m.payload.ansible_task === 'TASK: handle a secret')!.payload.ansible_result, { censored: /no_log: true/ })
  t.match(run.find(m => m.payload.ansible_task === 'TASK: an ordinary task')!.payload.ansible_result, { stdout: 'visible' })
})

t.test('skipped tasks are SKIPPED', async t => {
  t.equal((await playbook('skipped.yml')).code, 0)
  t.same(shape(await finished('some tasks do not run')), ['action/start', 'task/localhost/SKIPPED', 'task/localhost/OK', 'stats/localhost', 'action/finish/OK'])
})

t.test('receiver down during a run: the playbook is unaffected; the spool is sent, in order, at the next run', async t => {
  const without = await playbook('fail.yml', false)
  await receiver.signal('SIGTERM')
  const during = await playbook('long.yml')
  t.equal(during.code, 0, 'the playbook succeeds with the receiver down')
  t.equal((await playbook('fail.yml')).code, without.code, 'and exit codes are as without the plugin')
  t.comment(`durations: fail.yml without the plugin ${without.ms} ms; long.yml with the receiver down ${during.ms} ms`)
  t.match(during.output, /firehose: receiver unreachable/, 'one warning says so')
  await receiver.start()
  t.equal((await playbook('pass.yml', true, join(dir, 'spool.jsonl'))).code, 0)
  const long = await finished('a longer run')
  t.same(shape(long), ['action/start', ...Array.from({ length: 15 }, () => 'task/localhost/OK'), 'stats/localhost', 'action/finish/OK'])
  t.same(long.filter(m => m.topic.includes('/task/')).map(m => m.payload.ansible_task), Array.from({ length: 15 }, (_, i) => `TASK: step ${i + 1}`), 'in order')
})

t.test('the receiver killed mid-run loses nothing it acknowledged; everything arrives once', async t => {
  const spool = join(dir, 'spool-kill.jsonl')
  await rm(spool, { force: true })
  const run = playbook('long.yml', true, spool)
  await waitFor('the run to be under way', () => receiver.logs.some(l => l.event === 'ansible.receiving') && sub.lines.length > 0, 20000)
  const before = sub.lines.length
  await waitFor('a few events of this run', () => sub.lines.length >= before + 3, 20000)
  await receiver.signal('SIGKILL')
  await receiver.start()
  t.equal((await run).code, 0)
  const all = messages().filter(m => m.payload.playbook_name === 'a longer run')
  const last = all.at(-1)!.payload.playbook_id
  const thisRun = await waitFor('the whole run', () => {
    const r = messages().filter(m => m.payload.playbook_id === last)
    return r.some(m => m.topic.includes('/action/finish/')) && r
  }, 20000)
  t.same(thisRun.filter(m => m.topic.includes('/task/')).map(m => m.payload.ansible_task), Array.from({ length: 15 }, (_, i) => `TASK: step ${i + 1}`), 'every task once, in order')
  t.same(shape(thisRun).filter(s => !s.startsWith('task/')), ['action/start', 'stats/localhost', 'action/finish/OK'])
})

t.test('over HTTPS, verified with the CA the plugin is given', async t => {
  const httpsPort = await freePort()
  const secure = await BridgeProcess.write('ansible', join(dir, 'ansible-https.yaml'), {
    name: 'ansible',
    mqtt: { urls: [`mqtt://127.0.0.1:${broker.ports.mqtt}`], username: 'ansible', password: 'ansible-secret', clientId: 'firehose-bridge-ansible-https' },
    outbox: { dir: join(dir, 'outbox-https') },
    ansible: { listen: { host: '127.0.0.1', port: httpsPort }, token: TOKEN, tls: { cert: broker.certs.cert, key: broker.certs.key } }
  })
  await secure.start()
  t.teardown(() => secure.signal('SIGTERM'))
  const r = await new Promise<number | null>(resolve => {
    const child = spawn('ansible-playbook', ['-i', join(FIXTURES, 'inventory.ini'), join(FIXTURES, 'skipped.yml')], {
      env: { ...process.env, ANSIBLE_CALLBACK_PLUGINS: PLUGIN, ANSIBLE_CALLBACKS_ENABLED: 'firehose', FIREHOSE_URL: `https://localhost:${httpsPort}/events`, FIREHOSE_TOKEN: TOKEN, FIREHOSE_CAFILE: broker.certs.ca, FIREHOSE_SPOOL: join(dir, 'spool-https.jsonl'), ANSIBLE_LOCAL_TEMP: join(dir, 'ansible-tmp') },
      stdio: 'ignore'
    })
    child.on('close', code => resolve(code))
  })
  t.equal(r, 0)
  await waitFor('events over HTTPS', () => secure.logs.some(l => l.event === 'ansible.receiving' && l.tls === true) &&
    messages().filter(m => m.payload.playbook_name === 'some tasks do not run').length >= 10, 20000)
  t.pass('the second run of skipped.yml arrived through the HTTPS receiver')
})

t.test('bad requests get a 4xx and publish nothing', async t => {
  const url = `http://127.0.0.1:${port}/events`
  const count = sub.lines.length
  const event = { id: 'x/1', kind: 'start', payload: { playbook_id: '5a95e9da-8d33-4dbb-a8b3-a77affc065d0', status: 'OK' } }
  const post = (body: string, token = TOKEN) => fetch(url, { method: 'POST', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } })
  t.equal((await post(JSON.stringify({ events: [event] }), 'wrong-token-wrong-token')).status, 401, 'wrong token')
  t.equal((await fetch(url, { method: 'POST', body: '{}' })).status, 401, 'no token')
  t.equal((await post('{"events": [')).status, 400, 'malformed JSON')
  t.equal((await post(JSON.stringify({ events: [{ ...event, kind: 'task', payload: { ...event.payload, ansible_host: 'a/b#' } }] }))).status, 422, 'a host that would break the topic')
  t.equal((await post(JSON.stringify({ events: [{ ...event, payload: { playbook_id: 'not-a-uuid', status: 'OK' } }] }))).status, 422, 'not a uuid')
  t.equal((await post(JSON.stringify({ events: [event], padding: 'x'.repeat(70000) }))).status, 413, 'oversized body')
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
  await new Promise(resolve => setTimeout(resolve, 500))
  t.equal(sub.lines.length, count, 'nothing was published')
  const metrics = receiver.logs.filter(l => l.event === 'bridge.input-rejected')
  t.ok(metrics.length >= 6, 'each refusal logged')
})

t.test('the retained status is current within a second of events, and keeps lastEventAt across a restart', async t => {
  const statusNow = async (): Promise<Record<string, unknown>> => {
    const r = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'firehose/bridges/ansible', '-C', '1', '-W', '5'])
    return JSON.parse(r.stdout) as Record<string, unknown>
  }
  const url = `http://127.0.0.1:${port}/events`
  const playbookId = 'f0e7a1c2-3b4d-4e5f-8a9b-0c1d2e3f4a5b'
  const before = Date.now()
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ events: Array.from({ length: 20 }, (_, i) => ({ id: `status-${i}`, kind: 'start', payload: { playbook_id: playbookId, status: 'OK' } })) })
  })
  t.equal(res.status, 200)
  await new Promise(resolve => setTimeout(resolve, 1000))
  const current = await statusNow()
  t.equal(current.state, 'connected', 'this receiver\'s status (the HTTPS one above, same name, said "stopped")')
  t.equal(current.outboxDepth, 0, 'the outbox drained, and the status says so')
  t.ok(typeof current.lastEventAt === 'string' && Date.parse(current.lastEventAt) >= before, `lastEventAt is the last event (${String(current.lastEventAt)})`)

  await receiver.signal('SIGTERM')
  await receiver.start()
  await new Promise(resolve => setTimeout(resolve, 1000))
  const restarted = await statusNow()
  t.equal(restarted.state, 'connected')
  t.equal(restarted.lastEventAt, current.lastEventAt, 'lastEventAt survives the restart')
})

t.test('everything the bridge published matches the schema catalogue', async t => {
  await matchesCatalogue(t, sub.lines, 'the Ansible events')
})
