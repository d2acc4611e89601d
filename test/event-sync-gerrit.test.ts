import { createHash } from 'node:crypto'
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { BridgeProcess } from './helpers/bridge-process.js'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { Sshd } from './helpers/openssh-server.js'
import { freePort } from './helpers/ports.js'
import { REPO } from './helpers/repo.js'
import { sleep, waitFor } from './helpers/wait.js'

// Event sync end to end: recorded Gerrit events streamed by a real OpenSSH sshd (its forced
// command follows a log, as `gerrit stream-events` would), carried by the real gerrit bridge
// to the real broker, journaled there and folded by the broker's event-sync rules; the third
// endpoint of each rule is HTTP (POST /v1/event-sync/<rule>/event/deploy). Combined events are
// read with mqtt.js on eventsync/<rule>, and checked against the journal (GET /v1/history).
// Each case has its own rule, and its own Gerrit projects: `<rule>/<repo>` (projects keep their
// slashes in the bridge's topics, gerrit/<project>/<type>), which the rule's filters
// gerrit/<rule>/+/<type> match and no other rule's do.

const USERS = { gerrit: 'gerrit-secret', ci: 'ci-secret', narrow: 'narrow-secret', reader: 'reader-secret' }
type User = keyof typeof USERS
const ACL = `# anonymous clients read everything
topic read #

user gerrit
topic read #
topic readwrite gerrit/#
topic readwrite firehose/bridges/gerrit

user ci
topic read #
topic readwrite eventsync/#

user narrow
topic read #
topic readwrite eventsync/es-window/#

user reader
topic read #
`

/** seconds */
const PERIOD = { window: 5, auth: 5, expiry: 3, drop: 8, keep: 8, reset: 10, manual: 3 }
const rule = (name: keyof typeof PERIOD, trigger: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: `es-${name}`,
  trigger: { type: 'window', observationPeriod: PERIOD[name], ...trigger },
  endpoints: [
    { eventKey: 'merge', topic: `gerrit/es-${name}/+/change-merged` },
    { eventKey: 'created', topic: `gerrit/es-${name}/+/patchset-created` },
    { eventKey: 'deploy' }
  ]
})
const RULES = [
  rule('auth'),
  rule('window'),
  rule('expiry'),
  rule('drop'),
  rule('keep', { keepEventAfterTrigger: true }),
  rule('reset'),
  { ...rule('manual'), trigger: { type: 'none', observationPeriod: `${PERIOD.manual}s` } }
]

// ---- Gerrit events: recorded ones, made distinct (own project, change number, time) ----

const fixture = (await readFile(join(REPO, 'packages/gerrit-bridge/test/fixtures/stream-events.jsonl'), 'utf8')).split('\n').filter(l => l !== '')
const TEMPLATES = {
  'patchset-created': JSON.parse(fixture[0]!) as Record<string, any>, // Gerrit 3.x, project1
  'comment-added': JSON.parse(fixture[2]!) as Record<string, any>, // Gerrit 3.x, depot
  'change-merged': JSON.parse(fixture[5]!) as Record<string, any> // Gerrit 2.x, qt/qtbase (no eventCreatedOn; a non-ASCII name)
}
type GerritType = keyof typeof TEMPLATES
for (const [type, template] of Object.entries(TEMPLATES)) if (template.type !== type) throw new Error(`fixture: expected a ${type}, found ${String(template.type)}`)
let clock = Math.floor(Date.now() / 1000)
let serial = 0

interface GerritEvent { type: GerritType, line: string, topic: string }
/** A distinct event of this type for this project, as Gerrit would write it, and the topic the bridge gives it. */
function gerrit (type: GerritType, project: string): GerritEvent {
  serial++
  const template = TEMPLATES[type]
  const event: Record<string, any> = { ...template, change: { ...template.change, project, number: typeof template.change.number === 'string' ? String(70000 + serial) : 70000 + serial } }
  if ('project' in template) event.project = project
  if ('eventCreatedOn' in template) event.eventCreatedOn = ++clock
  if (type === 'comment-added') event.comment = `comment ${serial}`
  return { type, line: JSON.stringify(event), topic: `gerrit/${project}/${type}` }
}

const dir = await mkdtemp(join(tmpdir(), 'firehose-event-sync-gerrit-'))
const logFile = join(dir, 'events.log')
await writeFile(logFile, '')
// what was started, stopped at the end, or at once should the setup below fail
const stops: Array<() => Promise<void>> = [async () => { await rm(dir, { recursive: true, force: true }) }]
const cleanup = async (): Promise<void> => {
  for (const stop of stops.splice(0).reverse()) await stop().catch((err: unknown) => { t.comment(`cleanup: ${String(err)}`) })
}
t.teardown(cleanup)
async function guard<T> (what: Promise<T>): Promise<T> {
  try {
    return await what
  } catch (err) {
    await cleanup()
    throw err
  }
}

const broker = await guard(BrokerProcess.start({ users: USERS, acl: ACL, config: { eventSync: RULES } }))
stops.push(async () => { await broker.stop() })
const sshd = await guard(Sshd.start({ dir: join(dir, 'sshd'), port: await freePort(), logFile }))
stops.push(async () => { await sshd.stop() })
const knownHosts = join(dir, 'known_hosts')
await writeFile(knownHosts, sshd.knownHostsLine + '\n')
const bridge = await BridgeProcess.write('gerrit', join(dir, 'gerrit-bridge.yaml'), {
  name: 'gerrit',
  mqtt: { urls: [`mqtts://localhost:${broker.ports.mqtts}`], ca: broker.certs.ca, username: 'gerrit', password: USERS.gerrit, keepalive: 5 },
  outbox: { dir: join(dir, 'outbox') },
  backoff: { initial: 0.2, max: 1 },
  log: { level: 'debug' },
  gerrit: { host: '127.0.0.1', port: sshd.port, username: sshd.user, privateKey: sshd.clientKeyPath, knownHosts, keepaliveInterval: 1, keepaliveCountMax: 3 }
})
stops.push(async () => { await bridge.signal('SIGTERM') })

// an anonymous reader of the combined events (eventsync/<rule>: not the rules' own
// eventsync/<rule>/... command and HTTP-event topics) and of what the bridge publishes
const mqtt = await guard(connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { clientId: 'event-sync-reader' }))
stops.push(async () => { await mqtt.endAsync() })
const combined = new Map<string, string[]>() // topic -> payloads, as they arrived
const bridged: Array<{ topic: string, payload: string }> = []
mqtt.on('message', (topic, payload) => {
  if (topic.startsWith('gerrit/')) bridged.push({ topic, payload: payload.toString('utf8') })
  else if (topic.startsWith('eventsync/')) combined.set(topic, [...combined.get(topic) ?? [], payload.toString('utf8')])
})
await guard(mqtt.subscribeAsync({ 'eventsync/+': { qos: 1 }, 'gerrit/#': { qos: 1 } }))

await guard(bridge.start())
// the stand-in, like Gerrit, streams only what is written after the bridge's session began
await guard(waitFor('a probe event to cross the bridge', async () => {
  const nonce = Math.random().toString(36).slice(2)
  await appendFile(logFile, JSON.stringify({ type: 'firehose-probe', project: 'probe', nonce }) + '\n')
  return await waitFor('the probe', () => bridged.some(b => b.payload.includes(nonce)), 500).then(() => true, () => false)
}, 20000, 0))

/** Writes the events to the log the sshd streams from; resolves once the broker has published each (so it is journaled) on its topic. */
async function stream (events: GerritEvent[]): Promise<void> {
  await appendFile(logFile, events.map(e => e.line + '\n').join(''))
  await waitFor(`${events.length} Gerrit events to cross the bridge`, () => events.every(e => bridged.some(b => b.payload === e.line)), 15000)
  for (const e of events) {
    const seen = bridged.filter(b => b.payload === e.line)
    if (seen.length !== 1 || seen[0]!.topic !== e.topic) throw new Error(`${e.type} arrived as ${JSON.stringify(seen.map(s => s.topic))}, expected once on ${e.topic}`)
  }
}

// ---- the broker's HTTP API ----

const base = `http://127.0.0.1:${broker.ports.ws}`
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
interface Answer { status: number, json: any, text: string, headers: Headers }

async function api (user: User | undefined | { user: string, password: string }, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const authorization: Record<string, string> = user === undefined ? {} : { authorization: typeof user === 'string' ? basic(user, USERS[user]) : basic(user.user, user.password) }
  const res = await fetch(base + path, { method, headers: { ...authorization, ...headers }, ...(body === undefined ? {} : { body }) })
  const text = await res.text()
  let json: unknown
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.status, json, text, headers: res.headers }
}

interface HttpEvent { rule: string, content: string, query: Record<string, string[]>, headers: Record<string, string> }
let deploys = 0
/** POSTs a deploy event as `user` (a JSON body, as sent: spacing and non-ASCII kept), a query and headers of its own; expects 202. */
async function deploy (t: Test, ruleName: string, user: User = 'ci'): Promise<HttpEvent> {
  deploys++
  const content = `{ "build": ${deploys},\n  "by": "Jüri", "note": "naïve ✓" }`
  const query = { env: ['prod'], tag: [`v${deploys}`, 'latest'], empty: [''] }
  const headers = { 'content-type': 'application/json; charset=utf-8', 'x-deploy-id': `deploy-${deploys}` }
  const res = await api(user, 'POST', `/v1/event-sync/${ruleName}/event/deploy?env=prod&tag=v${deploys}&tag=latest&empty=`, content, headers)
  t.equal(res.status, 202, `deploy ${deploys} to ${ruleName}: 202 (${res.text})`)
  t.same(res.json, { rule: ruleName, eventKey: 'deploy', topic: `eventsync/${ruleName}/event/deploy` })
  return { rule: ruleName, content, query, headers }
}

interface EndpointState { topic: string, events: number, eventsTotal: number, FirstEventDate?: string, lastEventDate?: string }
interface RuleStateView { name: string, endpoints: Record<string, EndpointState>, nextExpiry: string | null, through: number, exportedThrough: number, pending: number, triggers: { window: number, none: number }, expired: number }
async function state (ruleName: string, user: User = 'ci'): Promise<RuleStateView> {
  const res = await api(user, 'GET', `/v1/event-sync/${ruleName}/state`)
  if (res.status !== 200) throw new Error(`GET state of ${ruleName}: ${res.status} ${res.text}`)
  return res.json as RuleStateView
}
const held = (s: RuleStateView): Record<string, number> => Object.fromEntries(Object.entries(s.endpoints).map(([k, e]) => [k, e.events]))
/** Waits until the rule holds exactly these counts (the fold follows the journal asynchronously). */
async function holds (ruleName: string, counts: Record<string, number>, ms = 10000): Promise<RuleStateView> {
  let last: RuleStateView | undefined
  try {
    return await waitFor(`${ruleName} to hold ${JSON.stringify(counts)}`, async () => {
      last = await state(ruleName)
      return JSON.stringify(held(last)) === JSON.stringify(counts) ? last : undefined
    }, ms)
  } catch (err) {
    throw new Error(`${(err as Error).message}; last state: ${JSON.stringify(last)}`)
  }
}

interface JournalEntry { offset: number, timestamp: number, topic: string, payload?: unknown, user?: string }
/** The journal's entry at this offset, read back through GET /v1/history. */
async function journalEntry (offset: number): Promise<JournalEntry> {
  const res = await api('ci', 'GET', `/v1/history?topic=%23&since=${offset}&limit=1`)
  const entry = (res.json as { events: JournalEntry[] } | undefined)?.events[0]
  if (res.status !== 200 || entry?.offset !== offset) throw new Error(`no journal entry at ${offset}: ${res.status} ${res.text.slice(0, 300)}`)
  return entry
}

// ---- combined events ----

interface OutputEvent { datetime: string, eventKey: string, headers: Record<string, string[]>, queryParams: Record<string, string[]>, content: string, contentEncoding?: string, topic: string, offset: number }
interface Output { eventID: string, date: string, serviceName: string, triggerType: string, triggerOffset: number, truncated?: boolean, events: Record<string, { FirstEventDate?: string, lastEventDate?: string, numberOfEvents: number, events: OutputEvent[] }> }
const outputs = (ruleName: string): Output[] => (combined.get(`eventsync/${ruleName}`) ?? []).map(p => JSON.parse(p) as Output)

/** JSON with every object's keys sorted, no spaces: what eventID is the MD5 of (over `events`). */
const canonical = (v: unknown): string => Array.isArray(v)
  ? `[${v.map(canonical).join(',')}]`
  : v !== null && typeof v === 'object'
    ? `{${Object.keys(v).sort().map(k => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`
    : JSON.stringify(v)

/** Waits for the rule's n-th combined event, then a second more: there must be exactly n. */
async function expectOutputs (t: Test, ruleName: string, n: number): Promise<Output[]> {
  await waitFor(`combined event ${n} on eventsync/${ruleName}`, () => outputs(ruleName).length >= n, 10000).catch(() => {})
  await sleep(1000) // a second one would be here by now
  const got = outputs(ruleName)
  t.equal(got.length, n, `exactly ${n} combined event(s) on eventsync/${ruleName}`)
  return got
}

async function expectNone (t: Test, ruleName: string, already: number, what: string): Promise<void> {
  await sleep(1500)
  t.equal(outputs(ruleName).length, already, `${what}: no combined event on eventsync/${ruleName}`)
}

const header = (headers: Record<string, string[]>, name: string): string[] => Object.entries(headers).filter(([k]) => k.toLowerCase() === name).flatMap(([, v]) => v)

/**
 * Checks a combined event, field by field, against what was sent and what the journal holds:
 * each endpoint's events (oldest first) with their content, headers, query, topic, offset and
 * time; the counts and dates; what caused it; and its id.
 */
async function checkOutput (t: Test, out: Output, expected: { rule: string, triggerType: 'window' | 'none', merge: GerritEvent[], created: GerritEvent[], deploy: HttpEvent[], cause: { topic: string, offset?: number } }): Promise<void> {
  t.equal(out.serviceName, expected.rule, 'serviceName: the rule')
  t.equal(out.triggerType, expected.triggerType, `triggerType ${expected.triggerType}`)
  t.notOk('truncated' in out, 'nothing left out')
  t.match(out.eventID, /^[0-9a-f]{32}$/, 'eventID: 32 hex digits')
  t.equal(out.eventID, createHash('md5').update(canonical(out.events)).digest('hex'), 'eventID: the MD5 of its events\' canonical JSON')
  t.same(Object.keys(out.events).sort(), ['created', 'deploy', 'merge'], 'every endpoint listed')

  const cause = await journalEntry(out.triggerOffset)
  t.equal(cause.topic, expected.cause.topic, `caused by the entry on ${expected.cause.topic}`)
  if (expected.cause.offset !== undefined) t.equal(out.triggerOffset, expected.cause.offset, 'triggerOffset: that event\'s offset')
  t.equal(out.date, new Date(cause.timestamp).toISOString(), 'date: when its cause was journaled')

  for (const key of ['merge', 'created'] as const) {
    const list = out.events[key]
    const sent = expected[key]
    t.equal(list?.numberOfEvents, sent.length, `${key}: numberOfEvents ${sent.length}`)
    t.same(list?.events.map(e => e.content), sent.map(e => e.line), `${key}: the Gerrit events, their JSON as text, byte for byte, oldest first`)
    t.same(list?.events.map(e => e.topic), sent.map(e => e.topic), `${key}: on the bridge's topics`)
    for (const e of list?.events ?? []) {
      t.equal(e.eventKey, key)
      t.same([e.headers, e.queryParams, e.contentEncoding], [{}, {}, undefined], `${key}: an MQTT event has no headers or query`)
    }
  }
  const deploys = out.events.deploy
  t.equal(deploys?.numberOfEvents, expected.deploy.length, `deploy: numberOfEvents ${expected.deploy.length}`)
  t.same(deploys?.events.map(e => e.content), expected.deploy.map(d => d.content), 'deploy: the HTTP bodies, as sent')
  t.same(deploys?.events.map(e => e.queryParams), expected.deploy.map(d => d.query), 'deploy: the query parameters, repeated ones in order')
  deploys?.events.forEach((e, i) => {
    const sent = expected.deploy[i]
    t.equal(e.eventKey, 'deploy')
    t.equal(e.topic, `eventsync/${expected.rule}/event/deploy`)
    t.equal(e.contentEncoding, undefined, 'text, not base64')
    for (const [name, value] of Object.entries(sent?.headers ?? {})) t.same(header(e.headers, name), [value], `deploy: header ${name} kept`)
    t.same(header(e.headers, 'host'), [`127.0.0.1:${broker.ports.ws}`], 'deploy: the request\'s other headers kept too')
    t.same(header(e.headers, 'authorization'), [], 'deploy: no Authorization header (the request had one)')
    t.ok(Object.values(e.headers).every(v => Array.isArray(v) && v.every(s => typeof s === 'string')), 'headers: name -> list of values')
  })

  // every listed event is the journal's entry at its offset, with its time; dates span them
  for (const [key, list] of Object.entries(out.events)) {
    const times: string[] = []
    for (const e of list.events) {
      const entry = await journalEntry(e.offset)
      t.equal(entry.topic, e.topic, `${key}@${e.offset}: the journal's topic`)
      t.equal(e.datetime, new Date(entry.timestamp).toISOString(), `${key}@${e.offset}: datetime is when it was journaled`)
      if (key === 'deploy') t.same(entry.payload, { headers: e.headers, queryParams: e.queryParams, content: e.content }, `${key}@${e.offset}: as journaled`)
      else t.same(entry.payload, JSON.parse(e.content), `${key}@${e.offset}: as journaled`)
      times.push(e.datetime)
    }
    t.same(list.events.map(e => e.offset), [...list.events.map(e => e.offset)].sort((a, b) => a - b), `${key}: oldest first`)
    t.equal(list.FirstEventDate, times[0], `${key}: FirstEventDate`)
    t.equal(list.lastEventDate, times.at(-1), `${key}: lastEventDate`)
    t.ok(list.events.every(e => e.offset <= out.triggerOffset), `${key}: nothing after the cause`)
  }
}

// ---- the cases ----

t.test('who may post: anonymous 401, a wrong password 401, no write access to eventsync/<rule>/# 403, unknown rule or key 404; none of it journaled', async t => {
  const body = '{"refused":true}'
  const anonymous = await api(undefined, 'POST', '/v1/event-sync/es-auth/event/deploy', body)
  t.equal(anonymous.status, 401, 'anonymous')
  t.match(anonymous.text, /authenticate with HTTP Basic/)
  t.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic /)
  t.equal((await api({ user: 'ci', password: 'not-the-password' }, 'POST', '/v1/event-sync/es-auth/event/deploy', body)).status, 401, 'a wrong password')
  for (const user of ['reader', 'narrow'] as const) {
    const refused = await api(user, 'POST', '/v1/event-sync/es-auth/event/deploy', body)
    t.equal(refused.status, 403, `${user}, who may not write eventsync/es-auth/#`)
    t.match(refused.text, new RegExp(`${user} may not post to rule "es-auth": that needs write access to eventsync/es-auth/event/deploy`))
    for (const command of ['trigger', 'reset']) t.equal((await api(user, 'POST', `/v1/event-sync/es-auth/${command}`)).status, 403, `${user}: ${command} refused`)
  }
  t.equal((await api(undefined, 'POST', '/v1/event-sync/es-auth/trigger')).status, 401, 'anonymous trigger')
  const unknown = await api('ci', 'POST', '/v1/event-sync/no-such-rule/event/deploy', body)
  t.equal(unknown.status, 404, 'unknown rule')
  t.match(unknown.text, /no rule named "no-such-rule"/)
  t.equal((await api('ci', 'POST', '/v1/event-sync/no-such-rule/trigger')).status, 404, 'unknown rule: trigger')
  t.equal((await api('ci', 'GET', '/v1/event-sync/no-such-rule/state')).status, 404, 'unknown rule: state')
  const noKey = await api('ci', 'POST', '/v1/event-sync/es-auth/event/nightly', body)
  t.equal(noKey.status, 404, 'unknown event key')
  t.match(noKey.text, /no endpoint "nightly" \(merge, created, deploy\)/)
  const mqttEndpoint = await api('gerrit', 'POST', '/v1/event-sync/es-auth/event/merge', body)
  t.equal(mqttEndpoint.status, 400, 'an endpoint fed by a topic takes no HTTP events (even from a user who may write that topic)')
  t.match(mqttEndpoint.text, /takes its events from gerrit\/es-auth\/\+\/change-merged, not from HTTP/)

  const s = await state('es-auth')
  t.same(held(s), { merge: 0, created: 0, deploy: 0 }, 'nothing held')
  t.same(Object.values(s.endpoints).map(e => e.eventsTotal), [0, 0, 0], 'nothing taken')
  t.same(s.triggers, { window: 0, none: 0 })
  const journaled = await api('ci', 'GET', '/v1/history?topic=eventsync/es-auth/%23&limit=10')
  t.same(journaled.json.events, [], 'no refused request reached the journal')
})

t.test('window: a change-merged and a patchset-created through the bridge, then an HTTP deploy: one combined event with all three', async t => {
  const decoy = gerrit('comment-added', 'es-window/qtbase') // same project, a type no endpoint takes
  const merge = gerrit('change-merged', 'es-window/qtbase')
  const created = gerrit('patchset-created', 'es-window/qtdeclarative')
  await stream([decoy, merge, created])
  const before = await holds('es-window', { merge: 1, created: 1, deploy: 0 })
  t.same(before.triggers, { window: 0, none: 0 }, 'two of three endpoints: not yet')
  t.same(Object.values(before.endpoints).map(e => e.eventsTotal), [1, 1, 0], 'the comment-added was not taken')
  t.equal(outputs('es-window').length, 0, 'nothing published yet')

  const sent = await deploy(t, 'es-window', 'narrow') // narrow may write eventsync/es-window/# and nothing else
  const [out] = await expectOutputs(t, 'es-window', 1)
  if (out === undefined) return
  await checkOutput(t, out, { rule: 'es-window', triggerType: 'window', merge: [merge], created: [created], deploy: [sent], cause: { topic: 'eventsync/es-window/event/deploy', offset: out.events.deploy?.events[0]?.offset } })

  const after = await waitFor('the combined event to be folded back (pending 0)', async () => { const s = await state('es-window'); return s.pending === 0 ? s : undefined })
  t.same(held(after), { merge: 0, created: 0, deploy: 0 }, 'the events used are exported')
  t.same(after.triggers, { window: 1, none: 0 })
  t.ok(after.exportedThrough >= out.triggerOffset, 'exported through the cause')
})

t.test('one event too old: it expires unused and does not count; a fresh one of its kind fires, without the old', async t => {
  const old = gerrit('change-merged', 'es-expiry/qtbase')
  await stream([old])
  await holds('es-expiry', { merge: 1, created: 0, deploy: 0 })
  await sleep(PERIOD.expiry * 1000 + 800) // the old merge leaves the period
  const created = gerrit('patchset-created', 'es-expiry/qtbase')
  await stream([created])
  const sent = await deploy(t, 'es-expiry')
  const s = await holds('es-expiry', { merge: 0, created: 1, deploy: 1 })
  t.ok(s.expired >= 1, `the old merge counted as expired (expired: ${s.expired})`)
  t.same(Object.values(s.endpoints).map(e => e.eventsTotal), [1, 1, 1], 'it had been taken')
  await expectNone(t, 'es-expiry', 0, 'merge expired')
  t.same((await state('es-expiry')).triggers, { window: 0, none: 0 })

  const fresh = gerrit('change-merged', 'es-expiry/qtbase')
  await stream([fresh])
  const [out] = await expectOutputs(t, 'es-expiry', 1)
  if (out === undefined) return
  await checkOutput(t, out, { rule: 'es-expiry', triggerType: 'window', merge: [fresh], created: [created], deploy: [sent], cause: { topic: fresh.topic, offset: out.events.merge?.events[0]?.offset } })
  const oldEntry = await api('ci', 'GET', `/v1/history?topic=${encodeURIComponent(old.topic)}&limit=10`)
  t.same(oldEntry.json.events.map((e: JournalEntry) => e.payload), [JSON.parse(old.line), JSON.parse(fresh.line)], 'both merges are in the journal: the old one was left out by the rule')
})

t.test('keepEventAfterTrigger: false exports the events used, true fires again on a later event with them all', async t => {
  const events = {
    'es-drop': { merge: gerrit('change-merged', 'es-drop/qtbase'), created: gerrit('patchset-created', 'es-drop/qtbase') },
    'es-keep': { merge: gerrit('change-merged', 'es-keep/qtbase'), created: gerrit('patchset-created', 'es-keep/qtbase') }
  }
  await stream(Object.values(events).flatMap(e => [e.merge, e.created]))
  await holds('es-drop', { merge: 1, created: 1, deploy: 0 })
  await holds('es-keep', { merge: 1, created: 1, deploy: 0 })
  const first = { 'es-drop': await deploy(t, 'es-drop'), 'es-keep': await deploy(t, 'es-keep') }
  for (const name of ['es-drop', 'es-keep'] as const) {
    await waitFor(`the first combined event of ${name}`, () => outputs(name).length >= 1)
    const out = outputs(name)[0]!
    await checkOutput(t, out, { rule: name, triggerType: 'window', merge: [events[name].merge], created: [events[name].created], deploy: [first[name]], cause: { topic: `eventsync/${name}/event/deploy` } })
  }

  const second = { 'es-drop': await deploy(t, 'es-drop'), 'es-keep': await deploy(t, 'es-keep') }
  const kept = await expectOutputs(t, 'es-keep', 2)
  t.equal(outputs('es-drop').length, 1, 'false: the second deploy alone fires nothing')
  const drop = await holds('es-drop', { merge: 0, created: 0, deploy: 1 })
  t.same(drop.triggers, { window: 1, none: 0 })

  const [one, two] = kept
  if (one === undefined || two === undefined) return
  await checkOutput(t, two, { rule: 'es-keep', triggerType: 'window', merge: [events['es-keep'].merge], created: [events['es-keep'].created], deploy: [first['es-keep'], second['es-keep']], cause: { topic: 'eventsync/es-keep/event/deploy', offset: two.events.deploy?.events[1]?.offset } })
  t.same(two.events.merge?.events, one.events.merge?.events, 'true: the same merge event again')
  t.same(two.events.deploy?.events[0], one.events.deploy?.events[0], 'true: the first deploy again, beside the second')
  t.ok(two.triggerOffset > one.triggerOffset, 'a later cause')
  t.not(two.eventID, one.eventID, 'other events, another id')
  const keep = await holds('es-keep', { merge: 1, created: 1, deploy: 2 })
  t.same(keep.triggers, { window: 2, none: 0 })
})

t.test('reset: what is held is flagged exported; the third endpoint alone then fires nothing, fresh events do', async t => {
  const merge = gerrit('change-merged', 'es-reset/qtbase')
  const created = gerrit('patchset-created', 'es-reset/qtbase')
  await stream([merge, created])
  const before = await holds('es-reset', { merge: 1, created: 1, deploy: 0 })
  const reset = await api('ci', 'POST', '/v1/event-sync/es-reset/reset')
  t.equal(reset.status, 202)
  t.same(reset.json, { rule: 'es-reset', reset: 'journaled' })
  const after = await holds('es-reset', { merge: 0, created: 0, deploy: 0 })
  t.ok(after.exportedThrough > before.exportedThrough, `exportedThrough moved on (${before.exportedThrough} -> ${after.exportedThrough})`)
  t.equal(after.nextExpiry, null, 'nothing to expire')

  // still well within the 10 s period of the merge and the patchset: only the reset keeps them out
  const sent = await deploy(t, 'es-reset')
  await holds('es-reset', { merge: 0, created: 0, deploy: 1 })
  await expectNone(t, 'es-reset', 0, 'after the reset')
  const s = await state('es-reset')
  t.same(held(s), { merge: 0, created: 0, deploy: 1 }, 'the deploy alone is held')
  t.same(s.triggers, { window: 0, none: 0 })
  t.equal(s.expired, 0, 'nothing expired: the reset, not the period, took them out')

  const merge2 = gerrit('change-merged', 'es-reset/qtbase')
  const created2 = gerrit('patchset-created', 'es-reset/qtbase')
  await stream([merge2, created2])
  const [out] = await expectOutputs(t, 'es-reset', 1)
  if (out === undefined) return
  await checkOutput(t, out, { rule: 'es-reset', triggerType: 'window', merge: [merge2], created: [created2], deploy: [sent], cause: { topic: created2.topic, offset: out.events.created?.events[0]?.offset } })
})

t.test('manual trigger of a type "none" rule: nothing until POST .../trigger, then one combined event with what the period holds', async t => {
  const old = gerrit('change-merged', 'es-manual/qtbase')
  await stream([old])
  await holds('es-manual', { merge: 1, created: 0, deploy: 0 })
  await sleep(PERIOD.manual * 1000 + 800) // the old merge leaves the period
  const merge = gerrit('change-merged', 'es-manual/qtbase')
  const created = gerrit('patchset-created', 'es-manual/qtbase')
  await stream([merge, created])
  const sent = await deploy(t, 'es-manual')
  const before = await holds('es-manual', { merge: 1, created: 1, deploy: 1 }, 5000)
  t.ok(before.expired >= 1, 'the old merge expired')
  await expectNone(t, 'es-manual', 0, 'every endpoint reported, but the rule is type "none"')
  t.same((await state('es-manual')).triggers, { window: 0, none: 0 })

  const trigger = await api('ci', 'POST', '/v1/event-sync/es-manual/trigger')
  t.equal(trigger.status, 202)
  t.same(trigger.json, { rule: 'es-manual', trigger: 'journaled' })
  const [out] = await expectOutputs(t, 'es-manual', 1)
  if (out === undefined) return
  await checkOutput(t, out, { rule: 'es-manual', triggerType: 'none', merge: [merge], created: [created], deploy: [sent], cause: { topic: 'eventsync/es-manual/trigger' } })
  t.match((await journalEntry(out.triggerOffset)).payload, { by: 'ci' }, 'the trigger command names who sent it')
  const after = await waitFor('pending 0', async () => { const s = await state('es-manual'); return s.pending === 0 ? s : undefined })
  t.same(held(after), { merge: 0, created: 0, deploy: 0 }, 'the events used are exported')
  t.same(after.triggers, { window: 0, none: 1 })
})
