import { appendFile, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BridgeProcess } from './helpers/bridge-process.js'
import { BrokerProcess } from './helpers/broker-process.js'
import { EventsLogStub } from './helpers/events-log-stub.js'
import { matchesCatalogue } from './helpers/schemas.js'
import { MosquittoSub } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { freePort } from './helpers/ports.js'
import { REPO } from './helpers/repo.js'
import { Sshd } from './helpers/openssh-server.js'
import { waitFor } from './helpers/wait.js'

// The Gerrit bridge against a real OpenSSH server whose forced command streams the events a
// test appends to a log (as a Gerrit server would), the real broker, and mosquitto_sub.
// Every fault — sshd killed, broker stopped, bridge SIGKILLed — must lose and duplicate nothing.

const dir = await mkdtemp(join(tmpdir(), 'firehose-gerrit-'))
const logFile = join(dir, 'events.log')
await writeFile(logFile, '')
const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
const sshd = await Sshd.start({ dir: join(dir, 'sshd'), port: await freePort(), logFile })
const eventsLog = await EventsLogStub.start({ logFile, port: await freePort(), username: 'firehose', password: 'http-secret' })
const knownHosts = join(dir, 'known_hosts')
await writeFile(knownHosts, sshd.knownHostsLine + '\n')
const metricsPort = await freePort()
const deadBrokerPort = await freePort() // nothing listens: the bridge must fail over to the next URL
t.teardown(async () => {
  await bridge.signal('SIGKILL')
  await sshd.stop()
  await eventsLog.close()
  await broker.stop()
})

const config = (overrides: Record<string, unknown> = {}) => ({
  name: 'gerrit',
  mqtt: {
    urls: [`mqtt://127.0.0.1:${deadBrokerPort}`, `mqtts://localhost:${broker.ports.mqtts}`],
    ca: broker.certs.ca,
    username: 'gerrit',
    password: USERS.gerrit,
    keepalive: 5
  },
  outbox: { dir: join(dir, 'outbox') },
  backoff: { initial: 0.2, max: 1 },
  metrics: { host: '127.0.0.1', port: metricsPort },
  log: { level: 'debug' },
  gerrit: {
    host: '127.0.0.1',
    port: sshd.port,
    username: sshd.user,
    privateKey: sshd.clientKeyPath,
    knownHosts,
    keepaliveInterval: 1,
    keepaliveCountMax: 3,
    eventsLog: { url: `http://127.0.0.1:${eventsLog.port}`, username: 'firehose', password: 'http-secret', overlap: 5, settle: 1 }
  },
  ...overrides
})

const fixture = (await readFile(join(REPO, 'packages/gerrit-bridge/test/fixtures/stream-events.jsonl'), 'utf8')).split('\n').filter(l => l !== '')
const template = JSON.parse(fixture[2]!) as Record<string, unknown> // a Gerrit 3.x comment-added
let clock = Math.floor(Date.now() / 1000)
let serial = 0
/** A distinct event, as Gerrit would write it: later eventCreatedOn, its own change number. */
function syntheticEvent (): { line: string, topic: string } {
  serial++
  const event = { ...template, change: { ...(template.change as object), number: 90000 + serial }, comment: `comment ${serial}`, eventCreatedOn: ++clock }
  return { line: JSON.stringify(event), topic: 'gerrit/depot/comment-added' }
}
const append = async (lines: string[]): Promise<void> => { await appendFile(logFile, lines.map(l => l + '\n').join('')) }

// a durable subscriber (clean session 0, QoS 1): it must see everything even across a broker restart
const events = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-i', 'gerrit-reader', '-c', '-q', '1', '-t', 'gerrit/#', '-v'])
const status = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'firehose/bridges/gerrit', '-v'])
t.teardown(() => { events.stop(); status.stop() })
const received = (): string[] => events.lines.filter(l => !l.startsWith('gerrit/probe/'))
const latestState = (): string | undefined => {
  const last = status.lines.at(-1)
  return last === undefined ? undefined : (JSON.parse(last.slice(last.indexOf(' ') + 1)) as { state: string }).state
}

/** Appends probe events until one arrives: the stream (and the subscriber) are live. */
async function streamIsLive (): Promise<void> {
  await waitFor('a probe event to cross the bridge', async () => {
    const nonce = Math.random().toString(36).slice(2)
    await append([JSON.stringify({ type: 'firehose-probe', project: 'probe', nonce })])
    try {
      await events.waitForLine(l => l.includes(nonce), 500)
      return true
    } catch {
      return false
    }
  }, 20000, 0)
}

/** every event a test expected, in order: what the journal must hold too */
const everExpected: string[] = []

async function expectExactly (expected: string[], what: string, t: Test): Promise<void> {
  everExpected.push(...expected)
  await waitFor(`${expected.length} events (${what})`, () => received().length >= expected.length, 30000).catch(() => {})
  await new Promise(resolve => setTimeout(resolve, 500)) // a duplicate would arrive by now
  // compare short ids first, for a readable diff, then the bytes
  const id = (line: string): string => /"comment":"(comment \d+)"/.exec(line)?.[1] ?? line.slice(0, 60)
  t.same(received().map(id), expected.map(id), `${what}: every event exactly once, in order`)
  t.same(received(), expected, `${what}: byte-identical on the right topics`)
}

let bridge = new BridgeProcess('gerrit', join(dir, 'gerrit-bridge.yaml'))

t.test('a host key that does not match known_hosts is refused', async t => {
  const wrongHosts = join(dir, 'wrong_known_hosts')
  await writeFile(wrongHosts, await Sshd.otherHostKeyLine(join(dir, 'other'), sshd.port) + '\n')
  const wrong = await BridgeProcess.write('gerrit', join(dir, 'wrong.yaml'), config({
    outbox: { dir: join(dir, 'wrong-outbox') },
    metrics: undefined,
    gerrit: { ...config().gerrit, knownHosts: wrongHosts }
  }))
  await wrong.start()
  const refusal = await waitFor('the refusal', () => wrong.logs.find(l => l.event === 'gerrit.stream-failed'))
  t.match(String(refusal.err), /HOST KEY MISMATCH for \[127\.0\.0\.1\]:\d+: server offered SHA256:/)
  t.equal(wrong.count('gerrit.streaming'), 0, 'never streamed')
  await waitFor('status "reconnecting" with the error', () => status.lines.some(l => l.includes('"reconnecting"') && l.includes('HOST KEY MISMATCH')))
  await wrong.signal('SIGTERM')
  t.equal(wrong.exitCode, 0)
})

t.test('every recorded event arrives on its topic, byte-identical; a malformed line is skipped and counted', async t => {
  bridge = await BridgeProcess.write('gerrit', join(dir, 'gerrit-bridge.yaml'), config())
  await bridge.start()
  await streamIsLive()
  await waitFor('status "connected"', () => latestState() === 'connected')
  t.ok(bridge.logs.some(l => l.event === 'bridge.broker-unreachable' && String(l.url).endsWith(`:${deadBrokerPort}`)), 'the first broker URL is down...')
  t.ok(bridge.logs.some(l => l.event === 'bridge.broker-connected' && l.url === `mqtts://localhost:${broker.ports.mqtts}`), '...so it failed over to the next, over TLS with the CA')
  const topics = [
    'project1/patchset-created', 'snix/patchset-created', 'depot/comment-added', 'snix/wip-state-changed',
    'qt/qtbase/reviewer-deleted', 'qt/qtbase/change-merged', 'qtqa/tqtc-coin-ci/reviewer-added', 'qt/qtbase/change-restored',
    'qt/qtbase/change-abandoned', 'qt/qtdeclarative/ref-updated', 'project1/ref-updated', 'project1/project-created',
    'project1/ref-replication-scheduled', 'project1/ref-replicated', 'project1/ref-replication-done'
  ]
  await append([...fixture.slice(0, 7), 'this is not JSON {', ...fixture.slice(7)])
  await expectExactly(fixture.map((line, i) => `gerrit/${topics[i]} ${line}`), 'the recorded stream', t)
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  t.match(metrics, /firehose_bridge_events_failed_total\{reason="malformed-json",bridge="gerrit"\} 1/)
  t.ok(bridge.logs.some(l => l.event === 'bridge.input-rejected' && l.reason === 'malformed-json' && l.line === 'this is not JSON {'), 'logged with the line')
  events.lines.length = 0
})

t.test('sshd killed mid-stream and restarted: the gap is filled from events-log, nothing twice', async t => {
  const batch = Array.from({ length: 30 }, syntheticEvent)
  await append(batch.slice(0, 10).map(e => e.line))
  await waitFor('the first ten', () => received().length === 10)
  await sshd.kill()
  await waitFor('status "reconnecting"', () => latestState() === 'reconnecting', 15000)
  await append(batch.slice(10, 20).map(e => e.line)) // written while the stream is down
  await sshd.restart()
  await waitFor('the gap fill', () => bridge.logs.some(l => l.event === 'gerrit.gap-filled'), 20000)
  await waitFor('status "connected"', () => latestState() === 'connected')
  await append(batch.slice(20).map(e => e.line))
  await expectExactly(batch.map(e => `${e.topic} ${e.line}`), 'sshd killed', t)
  t.ok(eventsLog.requests.some(u => u.includes('t1=')), 'asked events-log with t1')
  events.lines.length = 0
})

t.test('a server that hangs (frozen, connection still open) is noticed by SSH keepalive', async t => {
  const before = bridge.count('gerrit.stream-failed') + bridge.count('gerrit.stream-ended')
  sshd.freeze()
  try {
    await waitFor('status "reconnecting"', () => latestState() === 'reconnecting', 20000)
    t.ok(bridge.count('gerrit.stream-failed') + bridge.count('gerrit.stream-ended') > before, 'the dead link was declared')
    t.ok(bridge.logs.some(l => /keepalive/i.test(String(l.err ?? ''))), 'by keepalive')
  } finally {
    sshd.thaw()
  }
  await waitFor('status "connected"', () => latestState() === 'connected', 30000)
  const batch = Array.from({ length: 5 }, syntheticEvent)
  await waitFor('the gap fill after reconnecting', () => bridge.logs.filter(l => l.event === 'gerrit.gap-filled').length >= 2, 20000)
  await append(batch.map(e => e.line))
  await expectExactly(batch.map(e => `${e.topic} ${e.line}`), 'after the hang', t)
  events.lines.length = 0
})

t.test('broker stopped mid-stream and restarted: the outbox holds events until it is back', async t => {
  const batch = Array.from({ length: 30 }, syntheticEvent)
  await append(batch.slice(0, 10).map(e => e.line))
  await waitFor('the first ten', () => received().length === 10)
  await broker.signal('SIGTERM')
  await append(batch.slice(10, 20).map(e => e.line))
  // ten at least: the tenth of the first batch may have reached the subscriber with its QoS 2
  // handshake still open when the broker stopped, and then waits in the outbox too (it is sent
  // again after the restart and must still arrive once: expectExactly below)
  let depth = NaN
  await waitFor('the ten new events in the outbox', async () => {
    const m = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(r => r.text())
    depth = Number(/firehose_bridge_outbox_depth\{bridge="gerrit"\} (\d+)/.exec(m)?.[1])
    return depth >= 10
  }).catch((err: unknown) => { throw new Error(`${String(err)} (outbox depth last read: ${depth})`) })
  // The bridge is frozen while the broker comes back, so the durable subscriber is
  // reconnected before the outbox drains: what it sees is the bridge's order, live. (The
  // broker now replays a queue before live messages too — test/reconnect-order.test.ts — but
  // this test is about the outbox.)
  await bridge.signal('SIGSTOP')
  await broker.launch()
  await waitFor('both subscribers back', async () => await broker.metric('firehose_clients_connected') >= 2, 15000)
  await bridge.signal('SIGCONT')
  await append(batch.slice(20).map(e => e.line))
  await expectExactly(batch.map(e => `${e.topic} ${e.line}`), 'broker stopped', t)
  events.lines.length = 0
})

t.test('bridge killed with SIGKILL mid-burst and restarted: outbox and gap fill lose nothing, dedupe keeps it once', async t => {
  const batch = Array.from({ length: 40 }, syntheticEvent)
  await append(batch.slice(0, 10).map(e => e.line))
  await waitFor('the first ten', () => received().length === 10)
  await append(batch.slice(10, 25).map(e => e.line))
  await new Promise(resolve => setTimeout(resolve, 30)) // kill while the burst is crossing
  await bridge.signal('SIGKILL')
  await waitFor('the will: status "offline"', () => latestState() === 'offline')
  await append(batch.slice(25, 30).map(e => e.line)) // while the bridge is dead
  await bridge.start()
  await append(batch.slice(30).map(e => e.line))
  await expectExactly(batch.map(e => `${e.topic} ${e.line}`), 'bridge SIGKILLed', t)
  events.lines.length = 0
})

t.test('without the events-log plugin the gap is reported, in the log and on the status topic', async t => {
  eventsLog.available = false
  await sshd.kill()
  await waitFor('status "reconnecting"', () => latestState() === 'reconnecting', 15000)
  await sshd.restart()
  const warning = await waitFor('the gap warning', () => bridge.logs.find(l => l.event === 'gerrit.gap-unfilled'), 20000)
  t.match(warning, { gap: { from: String, to: String }, reason: /no events-log plugin/ })
  await waitFor('the gap on the status topic', () => status.lines.some(l => l.includes('"connected"') && l.includes('"gap":{"from"')))
  eventsLog.available = true
})

/** Every event on gerrit/# in the journal (the probes aside), as `topic payload` lines. */
async function journaledEvents (): Promise<string[]> {
  const journaled: string[] = []
  for (let path: string | null = '/v1/history?topic=gerrit/%23&limit=1000'; path !== null;) {
    const page = await (await fetch(`http://127.0.0.1:${broker.ports.ws}${path}`)).json() as { events: Array<{ topic: string, payload: unknown }>, next: string | null }
    journaled.push(...page.events.filter(e => !e.topic.startsWith('gerrit/probe/')).map(e => `${e.topic} ${JSON.stringify(e.payload)}`))
    path = page.next
  }
  return journaled
}

t.test('the journal holds every event the bridge published, once, in order, across the broker stop and the bridge kill', async t => {
  const journaled = await journaledEvents()
  const id = (line: string): string => /"comment":"(comment \d+)"/.exec(line)?.[1] ?? line.slice(0, 60)
  const ids = journaled.map(id)
  t.same(ids.filter(i => everExpected.map(id).includes(i)), everExpected.map(id), 'every event delivered, in the journal once, in the same order')
})

t.test('everything the bridge published, events and status, matches the schema catalogue', async t => {
  // every event the bridge ever published, from the journal (the reader's lines are reset between tests)
  const journaled = await journaledEvents()
  await matchesCatalogue(t, journaled, 'the Gerrit events')
  await matchesCatalogue(t, status.lines, 'the bridge\'s status')
})

t.test('SIGTERM: the status says "stopped" and the process exits 0', async t => {
  await bridge.signal('SIGTERM')
  t.equal(bridge.exitCode, 0)
  await waitFor('status "stopped"', () => latestState() === 'stopped')
  const states = status.lines.map(l => (JSON.parse(l.slice(l.indexOf(' ') + 1)) as { state: string }).state)
  for (const s of ['connected', 'reconnecting', 'offline', 'stopped']) t.ok(states.includes(s), `the status topic showed "${s}"`)
})
