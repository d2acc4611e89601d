import { execFile } from 'node:child_process'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { WebSocket } from 'ws'
import { BrokerProcess } from './helpers/broker-process.js'
import { httpApi } from './helpers/http-api.js'
import { FIREHOSE_BIN, REPO } from './helpers/repo.js'
import { run } from './helpers/mosquitto.js'
import { sleep, waitFor } from './helpers/wait.js'

// Pull subscriptions on a real broker: events published with mosquitto_pub, pulled and acked
// over HTTP (Node's fetch) as different users; the broker SIGKILLed mid-run; redelivery after
// the ack deadline, dead letters, seek, long polls, ownership and bad input.

const USERS = { gerrit: 'gerrit-secret', alice: 'alice-secret', bob: 'bob-secret', root: 'root-secret' }
const broker = await BrokerProcess.start({
  users: USERS,
  acl: 'user gerrit\ntopic readwrite gerrit/#\n\nuser alice\ntopic read gerrit/#\n\nuser bob\ntopic read gerrit/#\ntopic read launchpad/#\n\nuser root\ntopic read #\ntopic read $SYS/#\n',
  config: { journal: { topics: ['#'] }, subscriptions: { admins: ['root'] } }
})
t.teardown(() => broker.stop())
const base = (): string => `http://127.0.0.1:${broker.ports.ws}`
type User = keyof typeof USERS

interface Message { ackId: string, delivery: number, offset: number, timestamp: number, topic: string, payload?: unknown }

const api = httpApi<User>(base, USERS)

async function publish (topic: string, lines: string[]): Promise<void> {
  const { code, stderr } = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', topic, '-l'], lines.join('\n') + '\n')
  if (code !== 0) throw new Error(`mosquitto_pub: ${stderr}`)
}

const pull = async (user: User, name: string, max: number, waitSeconds = 0): Promise<Message[]> => {
  const { status, json, text } = await api(user, 'POST', `/v1/subscriptions/${name}/pull`, { max, waitSeconds })
  if (status !== 200) throw new Error(`pull ${name}: ${status} ${text}`)
  return json as Message[]
}
const ack = async (user: User, name: string, messages: Message[]): Promise<number> =>
  (await api(user, 'POST', `/v1/subscriptions/${name}/ack`, { ackIds: messages.map(m => m.ackId) })).json.acked as number

t.test('bad creation requests: each refused with its status and a message naming the field, nothing created', async t => {
  const cases: Array<[User | undefined, unknown, number, RegExp]> = [
    [undefined, { name: 'x', topics: ['gerrit/#'] }, 401, /authenticate with HTTP Basic/],
    ['alice', '{"name": "x", "topics": [', 400, /JSON/],
    ['alice', { name: 'x' }, 400, /^topics: /],
    ['alice', { name: 'no spaces', topics: ['gerrit/#'] }, 400, /^name: /],
    ['alice', { name: 'x', topics: ['gerrit/#/x'] }, 400, /^topics\[0\]: "gerrit\/#\/x" is not an MQTT topic filter/],
    ['alice', { name: 'x', topics: ['gerrit/#'], type: 'fax' }, 400, /^type: /],
    ['alice', { name: 'x', topics: ['launchpad/#'] }, 403, /^topics\[0\]: "launchpad\/#" may not be read by alice/],
    ['alice', { name: 'x', topics: ['gerrit/#'], padding: 'x'.repeat(70_000) }, 413, /too large/]
  ]
  for (const [user, body, status, message] of cases) {
    const res = await api(user, 'POST', '/v1/subscriptions', body)
    t.equal(res.status, status, `${JSON.stringify(body).slice(0, 60)} -> ${status}`)
    t.match(res.text, message)
  }
  t.same((await api('root', 'GET', '/v1/subscriptions')).json, { subscriptions: [] })
})

t.test('10,000 events pulled and acked in batches, across a broker SIGKILL: every one acked, the unacked batch again', async t => {
  const created = await api('alice', 'POST', '/v1/subscriptions', { name: 'ci', topics: ['gerrit/#'], ackDeadline: 3 })
  t.equal(created.status, 201)
  t.equal(created.headers.get('location'), '/v1/subscriptions/ci')
  t.match(created.json, { name: 'ci', owner: 'alice', type: 'pull', topics: ['gerrit/#'], ackDeadline: 3, maxDeliveries: 10, retentionDays: 7, outstanding: 0 })
  t.equal((await api('bob', 'POST', '/v1/subscriptions', { name: 'ci', topics: ['gerrit/#'] })).status, 409, 'a name is taken once')

  const lines = Array.from({ length: 10_000 }, (_, i) => JSON.stringify({ seq: i }))
  await publish('gerrit/change-merged', lines)
  const acked = new Map<number, number>() // seq -> times acked
  let deliveries = 0
  const take = async (max: number, doAck: boolean): Promise<Message[]> => {
    const batch = await pull('alice', 'ci', max)
    deliveries += batch.length
    if (doAck && batch.length > 0) {
      t.equal(await ack('alice', 'ci', batch), batch.length)
      for (const m of batch) { const seq = (m.payload as { seq: number }).seq; acked.set(seq, (acked.get(seq) ?? 0) + 1) }
    }
    return batch
  }
  for (let i = 0; i < 6; i++) await take(500, true)
  const unacked = await take(500, false) // pulled, then the consumer "dies" before acking
  t.equal(unacked.length, 500)
  await broker.signal('SIGKILL')
  await broker.launch()
  // what remains, until every event is acked: the unacked batch comes back once its deadline has
  // passed (before or after the new events, depending on how long the restart took)
  const secondDeliveries: Message[] = []
  for (let waited = 0; acked.size < 10_000 && waited < 20_000;) {
    const batch = await take(500, true)
    secondDeliveries.push(...batch.filter(m => m.delivery > 1))
    if (batch.length === 0) {
      await sleep(200)
      waited += 200
    }
  }
  t.same(secondDeliveries.map(m => m.offset), unacked.map(m => m.offset), 'the unacked batch came back, in order, as second deliveries')
  t.equal(acked.size, 10_000, 'every event acked')
  t.ok([...acked.values()].every(n => n === 1), 'each once')
  t.equal(deliveries, 10_500, 'delivered: every event once, and the unacked batch twice')
  t.same(await pull('alice', 'ci', 10), [])
  t.comment(`duplicates delivered: ${deliveries - 10_000} (the batch pulled but not acked before the kill)`)
  // counters since the restart: 6,500 new events, then the 500 again
  const ci = '{subscription="ci"}'
  t.same(await Promise.all(['delivered_total', 'redelivered_total', 'acked_total', 'outstanding'].map(async m => await broker.metric(`firehose_subscription_${m}`, ci))), [7000, 500, 7000, 0])
  t.equal(await broker.metric('firehose_subscriptions'), 1)
})

t.test('long poll: a pull waiting for events gets one published while it waits; the totals count it', async t => {
  const totals = async (): Promise<number[]> => await Promise.all(['events_triggered_total', 'store_ok_total'].map(async m => await broker.metric(`firehose_subscriptions_${m}`)))
  const before = await totals()
  const waiting = pull('alice', 'ci', 10, 10)
  await sleep(300)
  await publish('gerrit/comment-added', ['{"late":true}'])
  await publish('launchpad/bug-filed', ['{"for":"nobody"}']) // no subscription's: not counted
  const got = await waiting
  t.same(got.map(m => m.payload), [{ late: true }])
  await ack('alice', 'ci', got)
  t.same((await totals()).map((n, i) => n - before[i]!), [1, 1], 'one event triggered, stored for one subscription')
})

t.test('long poll: a nack from another request wakes a waiting pull at once (not at the ack deadline)', async t => {
  t.equal((await api('alice', 'POST', '/v1/subscriptions', { name: 'woken', topics: ['gerrit/ref-replicated'], ackDeadline: 600 })).status, 201)
  await publish('gerrit/ref-replicated', ['{"once":1}'])
  const [first] = await pull('alice', 'woken', 10)
  t.ok(first !== undefined)
  const started = Date.now()
  const waiting = pull('alice', 'woken', 10, 20)
  await sleep(300)
  await publish('launchpad/bug-filed', ['{"for":"nobody"}']) // another topic: the pull waits on
  await sleep(300)
  t.equal((await api('alice', 'POST', '/v1/subscriptions/woken/nack', { ackIds: [first!.ackId] })).json.nacked, 1)
  const again = await waiting
  t.same(again.map(m => [m.payload, m.delivery]), [[{ once: 1 }, 2]], 'the nacked event, its second delivery')
  // the wait was 20 s and the deadline 600 s: it came back because the nack woke it
  t.ok(Date.now() - started < 10_000, `back after ${Date.now() - started} ms`)
  await ack('alice', 'woken', again)
  await api('alice', 'DELETE', '/v1/subscriptions/woken')
})

t.test('nack, maxDeliveries, dead letters and their replay; seek', async t => {
  t.equal((await api('alice', 'POST', '/v1/subscriptions', { name: 'flaky', topics: ['gerrit/patchset-created'], ackDeadline: 1, maxDeliveries: 2 })).status, 201)
  await publish('gerrit/patchset-created', ['{"n":1}', '{"n":2}'])
  const first = await pull('alice', 'flaky', 10)
  t.equal(first.length, 2)
  t.equal((await api('alice', 'POST', '/v1/subscriptions/flaky/nack', { ackIds: [first[0]!.ackId] })).json.nacked, 1)
  const nacked = await pull('alice', 'flaky', 10)
  t.same(nacked.map(m => [m.payload, m.delivery]), [[{ n: 1 }, 2]], 'a nacked event comes back at once; the other waits for its deadline')
  await sleep(1100)
  t.same((await pull('alice', 'flaky', 10)).map(m => [m.payload, m.delivery]), [[{ n: 2 }, 2]], 'n:1 went to the dead letters after 2 deliveries; n:2 is delivered a second time')
  await sleep(1100)
  t.same(await pull('alice', 'flaky', 10), [])
  const letters = await api('alice', 'GET', '/v1/subscriptions/flaky/dead-letters')
  t.match(letters.json.deadLetters, [{ deliveries: 2, reason: /maxDeliveries/, event: { topic: 'gerrit/patchset-created', payload: { n: 1 } } }, { deliveries: 2, event: { payload: { n: 2 } } }])
  t.same((await api('alice', 'POST', '/v1/subscriptions/flaky/dead-letters/replay')).json, { replayed: 2 })
  const replayed = await pull('alice', 'flaky', 10)
  t.same(replayed.map(m => [m.payload, m.delivery]), [[{ n: 1 }, 1], [{ n: 2 }, 1]])
  await ack('alice', 'flaky', replayed)
  // seek back to the first of them: both again
  const sought = await api('alice', 'POST', '/v1/subscriptions/flaky/seek', { to: replayed[0]!.offset })
  t.equal(sought.status, 200)
  t.same((await pull('alice', 'flaky', 10)).map(m => m.payload), [{ n: 1 }, { n: 2 }])
  t.match((await api('alice', 'POST', '/v1/subscriptions/flaky/seek', { to: 'last tuesday' })).text, /^to: "last tuesday" is not "now", "earliest", an offset or an ISO 8601 date/)
  t.match((await api('alice', 'POST', '/v1/subscriptions/flaky/ack', { ackIds: 'all' })).text, /^ackIds: expected a list/)
})

t.test('ownership: a user sees and touches only their own subscriptions, an admin all; anonymous nothing', async t => {
  t.same((await api('bob', 'GET', '/v1/subscriptions')).json, { subscriptions: [] })
  for (const [method, path, body] of [['GET', '/v1/subscriptions/ci'], ['DELETE', '/v1/subscriptions/ci'], ['POST', '/v1/subscriptions/ci/pull', {}], ['POST', '/v1/subscriptions/ci/seek', { to: 'earliest' }], ['GET', '/v1/subscriptions/ci/dead-letters']] as const) {
    const res = await api('bob', method, path, body)
    t.equal(res.status, 404, `bob: ${method} ${path}`)
    t.match(res.text, /^no subscription "ci"/)
  }
  t.equal((await api(undefined, 'GET', '/v1/subscriptions')).status, 401)
  t.same((await api('root', 'GET', '/v1/subscriptions')).json.subscriptions.map((s: { name: string }) => s.name), ['ci', 'flaky'])
  t.equal((await api('root', 'DELETE', '/v1/subscriptions/flaky')).status, 204)
  t.same((await api('alice', 'GET', '/v1/subscriptions')).json.subscriptions.map((s: { name: string }) => s.name), ['ci'])
  await sleep(1500) // a $SYS value published before the delete is retained for up to a second
  const sys = await run('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'root', '-P', USERS.root, '-v', '-t', '$SYS/broker/subscriptions/count', '-t', '$SYS/broker/subscriptions/pull/count', '-C', '2', '-W', '10'])
  const [mqttCount, pullCount] = sys.stdout.trim().split('\n').sort()
  t.match(mqttCount, /^\$SYS\/broker\/subscriptions\/count \d+$/, 'Mosquitto\'s MQTT subscription count, as it was')
  t.equal(pullCount, '$SYS/broker/subscriptions/pull/count 1', 'the pull subscriptions, apart')
  // and after a restart, the same
  await broker.restart()
  t.same((await api('alice', 'GET', '/v1/subscriptions')).json.subscriptions.map((s: { name: string }) => s.name), ['ci'])
})

t.test('firehose subscriptions: mk-pull writes a creds file, listen prints and acks, ls, show, seek, rm; bad usage', async t => {
  const creds = join(broker.dir, 'bob.creds')
  const cli = async (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number, stdout: string, stderr: string }> =>
    await promisify(execFile)(process.execPath, [FIREHOSE_BIN, 'subscriptions', ...args], { env: { ...process.env, ...env } })
      .then(r => ({ code: 0, ...r }))
      .catch((err: { code: number, stdout: string, stderr: string }) => err)
  const bob = { FIREHOSE_URL: base(), FIREHOSE_USER: 'bob', FIREHOSE_PASSWORD: USERS.bob }
  const made = await cli(['mk-pull', 'bob-queue', '--topic', 'gerrit/ref-updated', '--ack-deadline', '5', '--creds', creds], bob)
  t.equal(made.code, 0, made.stderr)
  t.match(JSON.parse(made.stdout), { name: 'bob-queue', owner: 'bob', ackDeadline: 5 })
  t.same(JSON.parse(await readFile(creds, 'utf8')), { url: `${base()}/`, username: 'bob', password: USERS.bob })
  t.equal((await stat(creds)).mode & 0o777, 0o600, 'the creds file is its owner\'s only')

  await publish('gerrit/ref-updated', ['{"ref":1}', '{"ref":2}', 'not json'])
  const listened = await cli(['listen', 'bob-queue', '--creds', creds, '--count', '3'])
  t.equal(listened.code, 0, listened.stderr)
  const lines = listened.stdout.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  t.same(lines.map(l => l.payload), [{ ref: 1 }, { ref: 2 }, 'not json'])
  t.match(lines[0], { topic: 'gerrit/ref-updated', delivery: 1 })
  t.notOk('ackId' in lines[0]!, 'ack ids are the command\'s business')
  const shown = JSON.parse((await cli(['show', 'bob-queue', '--creds', creds])).stdout)
  t.match(shown, { outstanding: 0, counters: { delivered: 3, acked: 3 } }, 'acked once printed')
  t.match((await cli(['ls', '--creds', creds])).stdout, /^bob-queue\tpull\tgerrit\/ref-updated\towner=bob\toutstanding=0\tdead-letters=0\n$/)
  t.match((await cli(['seek', 'bob-queue', '--to', 'earliest', '--creds', creds])).stdout, /^bob-queue: next offset \d+/)
  t.equal((await cli(['listen', 'bob-queue', '--creds', creds, '--count', '1'])).code, 0)
  t.equal((await cli(['rm', 'bob-queue', '--creds', creds])).code, 0)
  t.equal((await cli(['ls', '--creds', creds])).stdout, '')

  const usage: Array<[string[], NodeJS.ProcessEnv, number, RegExp]> = [
    [['mk-pull', 'x'], bob, 2, /at least one --topic FILTER is needed/],
    [['show', 'nobody-has-this', '--creds', creds], {}, 2, /404: no subscription "nobody-has-this"/],
    [['ls'], { ...bob, FIREHOSE_PASSWORD: 'wrong' }, 2, /401: bad user name or password/],
    [['ls', '--creds', join(broker.dir, 'missing.creds')], {}, 2, /--creds: .* does not exist/],
    [['ls'], { ...bob, FIREHOSE_URL: 'http://127.0.0.1:1' }, 1, /cannot reach http:\/\/127\.0\.0\.1:1/],
    [['frobnicate'], bob, 2, /unknown action "frobnicate"/],
    [['listen', 'x', '--count', 'lots'], bob, 2, /--count: "lots" is not a whole number/]
  ]
  for (const [args, env, code, message] of usage) {
    const r = await cli(args, env)
    t.equal(r.code, code, args.join(' '))
    t.match(r.stderr, message)
  }
})

t.test('a stream subscription: a capability URL anyone holding it reads (from an offset, or live); deleting it closes its readers', async t => {
  const created = await api('alice', 'POST', '/v1/subscriptions', { name: 'live', topics: ['gerrit/comment-added'], type: 'stream' })
  t.equal(created.status, 201, created.text)
  const location = created.json.location as string
  t.match(location, new RegExp(`^ws://127\\.0\\.0\\.1:${broker.ports.ws}/event-stream/[A-Za-z0-9_-]{24}$`))
  t.equal(created.headers.get('location'), location, 'its location is where it is read')
  t.equal((await api('alice', 'GET', '/v1/subscriptions/live')).json.location, location)
  t.equal((await api('alice', 'POST', '/v1/subscriptions/live/pull', {})).status, 400, 'a stream is not pulled')

  await publish('gerrit/comment-added', ['{"c":1}'])
  const { offset } = ((await api('root', 'GET', '/v1/history?topic=gerrit/comment-added&limit=1000')).json as { events: Array<{ offset: number }> }).events.at(-1)!
  // no credentials: the id is the capability
  const ws = new WebSocket(location, { headers: { 'X-StreamOffsetFromOrdinal': String(offset) } })
  const messages: Array<Record<string, unknown>> = []
  ws.on('message', data => messages.push(JSON.parse(String(data)) as Record<string, unknown>))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  await publish('gerrit/comment-added', ['{"c":2}'])
  await publish('gerrit/change-merged', ['{"not":"this topic"}'])
  await waitFor('two messages on the stream', () => messages.length >= 2)
  t.same(messages.map(m => m.c), [1, 2], 'history from the offset, then live, only its topics')
  t.equal(messages[0]!.ess_offset, offset)

  const wrong = new WebSocket(location.replace(/[^/]+$/, 'not-the-id'))
  const refused = await new Promise<number>(resolve => wrong.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)))
  t.equal(refused, 404)

  const closed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))
  t.equal((await api('alice', 'DELETE', '/v1/subscriptions/live')).status, 204)
  t.equal(await closed, 1001, 'its reader is closed')
})

t.test('examples/pull_listener.py pulls, prints and acks', async t => {
  t.equal((await api('bob', 'POST', '/v1/subscriptions', { name: 'py-pull', topics: ['gerrit/merge-failed'] })).status, 201)
  await publish('gerrit/merge-failed', ['{"m":1}', '{"m":2}', '{"m":3}'])
  const { stdout } = await promisify(execFile)('/usr/bin/python3', [join(REPO, 'examples/pull_listener.py'), '--url', base(), '--user', 'bob', '--subscription', 'py-pull', '--count', '3'], { env: { ...process.env, FIREHOSE_PASSWORD: USERS.bob } })
  t.same(stdout.trim().split('\n').map(line => (JSON.parse(line) as { payload: unknown }).payload), [{ m: 1 }, { m: 2 }, { m: 3 }])
  t.match((await api('bob', 'GET', '/v1/subscriptions/py-pull')).json, { outstanding: 0, counters: { acked: 3 } })
})
