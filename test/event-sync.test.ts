import { execFile } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { connectAsync, type MqttClient } from 'mqtt'
import { parse, stringify } from 'yaml'
import { BrokerProcess } from './helpers/broker-process.js'
import { httpApi, readHistory, type HistoryEntry } from './helpers/http-api.js'
import { connect } from './helpers/mqtt.js'
import { FIREHOSE_BIN, REPO } from './helpers/repo.js'
import { sleep, waitFor } from './helpers/wait.js'
import { windowsOf } from './helpers/windows.js'

// Event sync on a real broker: rules from the configuration and from the API, HTTP and MQTT
// events, the output's format against the original's README sample, 10,000 events/s checked
// against an independent computation of the windows, and SIGKILLs while events flow.

const USERS = { infra: 'infra-secret', alice: 'alice-secret', bob: 'bob-secret', root: 'root-secret', poster: 'poster-secret' }
type User = keyof typeof USERS
const ACL = 'user infra\ntopic readwrite gerrit/#\ntopic readwrite eventsync/#\n\nuser alice\ntopic read gerrit/#\ntopic read eventsync/#\n\nuser bob\ntopic read launchpad/#\n\nuser root\ntopic read #\n\nuser poster\ntopic write eventsync/My-First-Event-Sync/#\n'
const sample = JSON.parse(await readFile(join(REPO, 'packages/event-sync/test/fixtures/eventsync-readme-sample.json'), 'utf8')) as { config: { trigger: unknown, endpoints: unknown[] }, requests: Array<{ eventKey: string, query: string, contentType: string, body: string }>, output: any }
const RATE_PERIOD_S = 1
const RULES = [
  { name: 'My-First-Event-Sync', trigger: sample.config.trigger, endpoints: sample.config.endpoints },
  { name: 'rate', trigger: { type: 'window', observationPeriod: RATE_PERIOD_S }, endpoints: [{ eventKey: 'a' }, { eventKey: 'b' }] },
  { name: 'crash', trigger: { type: 'window', observationPeriod: RATE_PERIOD_S }, endpoints: [{ eventKey: 'x', topic: 'gerrit/+/x' }, { eventKey: 'y' }] }
]
const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { subscriptions: { admins: ['root'] }, eventSync: RULES } })
t.teardown(() => broker.stop())
const api = httpApi<User>(() => `http://127.0.0.1:${broker.ports.ws}`, USERS)
const mqttUrl = (): string => `mqtt://127.0.0.1:${broker.ports.mqtt}`

interface Output { eventID: string, triggerOffset: number, serviceName: string, events: Record<string, { numberOfEvents: number, events: Array<{ offset: number }> }> }
const outputsIn = (entries: readonly HistoryEntry[], topic: string): Output[] => entries.filter(e => e.topic === topic && e.user === undefined).map(e => e.payload as Output)

t.test('golden: the sample configuration and requests of the original\'s README give its output, dates and id aside', async t => {
  const sub = await connect(mqttUrl(), { username: 'alice', password: USERS.alice })
  t.teardown(() => sub.end(true))
  const got: any[] = []
  sub.on('message', (_topic, payload) => got.push(JSON.parse(payload.toString())))
  await sub.subscribeAsync('eventsync/My-First-Event-Sync', { qos: 1 })
  for (const r of sample.requests) {
    const res = await api('infra', 'POST', `/v1/event-sync/My-First-Event-Sync/event/${r.eventKey}?${r.query}`, r.body, { 'content-type': r.contentType })
    t.equal(res.status, 202, res.text)
  }
  await waitFor('the combined event', () => got.length > 0)
  await sleep(300)
  t.equal(got.length, 1, 'one combined event')
  const out = got[0]
  t.match(out.eventID, /^[0-9a-f]{32}$/)
  const isoDate = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/
  // dates and id aside; of the request headers, those the sample's requests sent; the fields
  // Firehose adds (triggerOffset, each event's topic and offset) set apart and checked
  const normalise = (o: any, ours: boolean): any => ({
    date: t.match(o.date, isoDate) ? 'DATE' : o.date,
    serviceName: ours ? 'My First Event Sync' : o.serviceName,
    triggerType: o.triggerType,
    events: Object.fromEntries(Object.entries(o.events).map(([key, list]: [string, any]) => [key, {
      FirstEventDate: t.match(list.FirstEventDate, isoDate) ? 'DATE' : list.FirstEventDate,
      lastEventDate: t.match(list.lastEventDate, isoDate) ? 'DATE' : list.lastEventDate,
      numberOfEvents: list.numberOfEvents,
      events: list.events.map((e: any) => {
        const { topic, offset, ...rest } = e
        if (ours) {
          t.equal(topic, `eventsync/My-First-Event-Sync/event/${key}`)
          t.type(offset, 'number')
        }
        return { ...rest, datetime: t.match(e.datetime, isoDate) ? 'DATE' : e.datetime, headers: { 'Content-Type': e.headers['Content-Type'] ?? e.headers['content-type'] } }
      })
    }]))
  })
  t.same(Object.keys(out), ['eventID', 'date', 'serviceName', 'triggerType', 'events', 'triggerOffset'], 'the fields, in the original\'s order, then Firehose\'s')
  t.same(Object.keys(out.events.entry1), Object.keys(sample.output.events.entry1), 'an event list\'s fields, FirstEventDate as written')
  t.same(normalise(out, true), normalise(sample.output, false))
  t.notOk(JSON.stringify(out).toLowerCase().includes('authorization'), 'credentials are not kept')
})

t.test('rules made through the API: owned, checked against the ACL; bad requests refused with the key named', async t => {
  const rule = { name: 'alice-rule', trigger: { type: 'window', observationPeriod: 60 }, endpoints: [{ eventKey: 'merge', topic: 'gerrit/+/change-merged' }, { eventKey: 'ok' }] }
  const cases: Array<[User | undefined, unknown, number, RegExp]> = [
    [undefined, rule, 401, /rules belong to users: authenticate with HTTP Basic/],
    ['alice', '{"name": "x", ', 400, /JSON/],
    ['alice', { ...rule, trigger: { type: 'window', observationPeriod: 0 } }, 400, /^trigger\.observationPeriod: 0 is not a duration above 0/],
    ['alice', { ...rule, condition: 'merge && nope' }, 400, /^condition: "nope" is not an event key of this rule \(merge, ok\) at column 10/],
    ['alice', { ...rule, endpoints: [{ eventKey: 'a' }, { eventKey: 'a' }] }, 400, /^endpoints\[1\]\.eventKey: "a" is also endpoints\[0\]'s/],
    ['bob', rule, 403, /^endpoints\[0\]\.topic: bob may not read gerrit\/\+\/change-merged/],
    ['alice', { ...rule, target: { topic: 'gerrit/fake/merged' } }, 403, /^target\.topic: alice may not publish to gerrit\/fake\/merged/],
    ['alice', { ...rule, target: { topic: 'gerrit/fake/change-merged' } }, 400, /^endpoints\[0\]\.topic: "gerrit\/\+\/change-merged" matches this rule's own output topic/],
    ['alice', '"just text"', 400, /^\(body\): expected a JSON object \(the rule\)/],
    ['alice', { ...rule, name: 'rate' }, 409, /a rule named "rate" exists/]
  ]
  for (const [user, body, status, message] of cases) {
    const res = await api(user, 'POST', '/v1/event-sync', body, typeof body === 'string' ? { 'content-type': 'application/json' } : {})
    t.equal(res.status, status, `${JSON.stringify(body).slice(0, 70)} -> ${status}`)
    t.match(res.text, message)
  }
  const made = await api('alice', 'POST', '/v1/event-sync', rule)
  t.equal(made.status, 201, made.text)
  t.equal(made.headers.get('location'), '/v1/event-sync/alice-rule')
  t.match(made.json, { name: 'alice-rule', owner: 'alice', source: 'api', target: { topic: 'eventsync/alice-rule' } })
  t.equal((await api('alice', 'POST', '/v1/event-sync', rule)).status, 409, 'a name is taken once')

  t.equal((await api('bob', 'GET', '/v1/event-sync/alice-rule')).status, 404, 'bob may not read its combined events, and does not own it')
  t.equal((await api('root', 'GET', '/v1/event-sync/alice-rule/config')).status, 200)
  t.same((await api('alice', 'GET', '/v1/event-sync/alice-rule/config')).json.endpoints, [{ eventKey: 'merge', topic: 'gerrit/+/change-merged', minEvents: 1 }, { eventKey: 'ok', minEvents: 1 }])
  t.same((await api('bob', 'GET', '/v1/event-sync')).json, { rules: [] }, 'bob sees no rule')
  t.same((await api('alice', 'GET', '/v1/event-sync')).json.rules.map((r: { name: string }) => r.name).sort(), ['My-First-Event-Sync', 'alice-rule', 'crash', 'rate'])

  // posting: write access to eventsync/<rule>/#, or owning the rule
  t.equal((await api('alice', 'POST', '/v1/event-sync/alice-rule/event/ok', 'fine')).status, 202, 'the owner may post without ACL write access')
  t.equal((await api('alice', 'POST', '/v1/event-sync/rate/event/a', 'x')).status, 403, 'alice may not post to a configured rule')
  t.match(await api('bob', 'POST', '/v1/event-sync/alice-rule/event/ok', 'x'), { status: 404, text: /no rule named "alice-rule"/ }, 'a rule bob may not see is one that does not exist')
  t.match(await api('bob', 'POST', '/v1/event-sync/alice-rule/event/other', 'x'), { status: 404, text: /^no rule named "alice-rule"/ }, 'without listing its endpoints')
  t.match(await api('bob', 'POST', '/v1/event-sync/alice-rule/trigger'), { status: 404, text: /no rule named "alice-rule"/ })
  t.match(await api('alice', 'POST', '/v1/event-sync/rate/trigger'), { status: 403, text: /alice may not post to rule "rate": that needs write access to eventsync\/rate\/trigger/ }, 'seen but not written: 403')
  t.equal((await api('root', 'POST', '/v1/event-sync/alice-rule/reset')).status, 202, 'an admin manages every rule')
  t.equal((await api('poster', 'POST', '/v1/event-sync/My-First-Event-Sync/reset')).status, 202, 'write access alone is enough to post')
  t.equal((await api('poster', 'GET', '/v1/event-sync/My-First-Event-Sync/state')).status, 404, 'though not to read')
  t.equal((await api(undefined, 'POST', '/v1/event-sync/rate/event/a', 'x')).status, 401)
  t.equal((await api('infra', 'POST', '/v1/event-sync/nope/event/a', 'x')).status, 404, 'no such rule')
  t.match((await api('infra', 'POST', '/v1/event-sync/rate/event/c', 'x')).text, /rule "rate" has no endpoint "c" \(a, b\)/)
  t.match((await api('alice', 'POST', '/v1/event-sync/alice-rule/event/merge', 'x')), { status: 400, text: /takes its events from gerrit\/\+\/change-merged, not from HTTP/ })
  t.equal((await api('infra', 'POST', '/v1/event-sync/rate/event/a', Buffer.from([0xff, 0xfe]), { 'content-type': 'application/octet-stream' })).status, 415, 'not UTF-8')
  t.equal((await api('infra', 'POST', '/v1/event-sync/rate/event/a', 'x'.repeat(600 * 1024), { 'content-type': 'text/plain' })).status, 413, 'over half the packet size')
  t.equal((await api('infra', 'GET', '/v1/event-sync/nope/state')).status, 404)

  t.equal((await api('bob', 'DELETE', '/v1/event-sync/alice-rule')).status, 403)
  t.match(await api('root', 'DELETE', '/v1/event-sync/rate'), { status: 409, text: /a rule of the broker's configuration: remove it there/ })
  t.equal((await api('alice', 'DELETE', '/v1/event-sync/alice-rule')).status, 204)
  t.equal((await api('alice', 'GET', '/v1/event-sync/alice-rule')).status, 404)
})

t.test('10,000 events/s for 10 s into two endpoints: one combined event per completed window, by the rule\'s definition computed apart; no duplicate', async t => {
  const sub = await connect(mqttUrl(), { username: 'alice', password: USERS.alice })
  t.teardown(() => sub.end(true))
  const received: Output[] = []
  sub.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()) as Output))
  await sub.subscribeAsync('eventsync/rate', { qos: 1 })
  const pub = await connect(mqttUrl(), { username: 'infra', password: USERS.infra })
  t.teardown(() => pub.end(true))

  // 10 % to b: a window completes at roughly every b that follows an a within the period
  let seed = 42
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const total = 100_000
  const started = Date.now()
  for (let sent = 0; sent < total;) {
    const due = Math.min(total, Math.floor((Date.now() - started) / 1000 * 10_000))
    for (; sent < due; sent++) pub.publish(`eventsync/rate/event/${random() < 0.1 ? 'b' : 'a'}`, String(sent), { qos: 0 })
    await sleep(5)
  }
  const seconds = (Date.now() - started) / 1000
  t.ok(seconds < 12, `sent ${total} in ${seconds.toFixed(1)} s`)
  const journaled = await waitFor('every event journaled', async () => {
    const entries = await readHistory(api, 'root', ['eventsync/rate/#'])
    return entries.filter(e => e.topic !== 'eventsync/rate').length === total ? entries : undefined
  }, 60_000, 1000)
  const expected = windowsOf(journaled, [topic => topic === 'eventsync/rate/event/a', topic => topic === 'eventsync/rate/event/b'], RATE_PERIOD_S * 1000)
  t.ok(expected.length > 5000, `${expected.length} windows completed`)
  await waitFor('every combined event', async () => received.length >= expected.length && (await api('root', 'GET', '/v1/event-sync/rate/state')).json.pending === 0, 120_000, 500)
  await sleep(500)
  t.equal(received.length, expected.length, 'as many combined events as completed windows')
  t.same(received.map(o => o.triggerOffset), expected, 'each at the event that completed its window, in order')
  t.equal(new Set(received.map(o => o.eventID)).size, received.length, 'no duplicate eventID')
  t.equal(await broker.metric('firehose_eventsync_triggers_total', '{rule="rate",type="window"}'), expected.length, '/metrics counts them')
  const taken = journaled.filter(e => e.topic === 'eventsync/rate/event/b').length
  t.equal(await broker.metric('firehose_eventsync_events_total', '{rule="rate",endpoint="b"}'), taken, 'and the events taken per endpoint')
  const inJournal = outputsIn(await readHistory(api, 'root', ['eventsync/rate']), 'eventsync/rate')
  t.equal(inJournal.length, expected.length, 'and as many in the journal')
  // every event of a window is in its combined event, once
  const used = received.flatMap(o => Object.values(o.events).flatMap(l => l.events.map(e => e.offset)))
  t.equal(new Set(used).size, used.length, 'no event in two combined events (they are exported)')
})

t.test('bad rules are refused at start, each problem naming its key', async t => {
  const file = join(broker.dir, 'bad.yaml')
  await writeFile(file, stringify({
    listeners: [{ port: 0, host: '127.0.0.1', protocol: 'mqtt' }],
    persistence: { dir: join(broker.dir, 'bad-data') },
    admin: false,
    eventSync: [
      { name: 'a', trigger: { type: 'window', observationPeriod: 0 }, endpoints: [{ eventKey: 'k' }] },
      { name: 'b', trigger: { type: 'window', observationPeriod: 60 }, endpoints: [{ eventKey: 'k' }, { eventKey: 'k' }] },
      { name: 'c', trigger: { type: 'window', observationPeriod: 60 }, endpoints: [{ eventKey: 'k' }], condition: 'k && deploy' }
    ]
  }))
  const failed = await promisify(execFile)(process.execPath, [FIREHOSE_BIN, 'broker', '--config', file]).then(() => undefined, (err: { code: number, stderr: string }) => err)
  t.equal(failed?.code, 2, 'exit code 2: a configuration problem')
  t.match(failed?.stderr, /eventSync\[0\]\.trigger\.observationPeriod: 0 is not a duration above 0/)
  t.match(failed?.stderr, /eventSync\[1\]\.endpoints\[1\]\.eventKey: "k" is also endpoints\[0\]'s/)
  t.match(failed?.stderr, /eventSync\[2\]\.condition: "deploy" is not an event key of this rule \(k\) at column 6/)
})

t.test('SIGHUP re-reads the configuration\'s rules; a file with problems changes nothing', async t => {
  const original = await readFile(broker.configFile, 'utf8')
  t.teardown(async () => { await writeFile(broker.configFile, original) })
  const config = parse(original) as { eventSync: unknown[] }
  await writeFile(broker.configFile, stringify({ ...config, eventSync: [...config.eventSync, { name: 'added', trigger: { type: 'none', observationPeriod: '1h' }, endpoints: [{ eventKey: 'k' }] }] }))
  await broker.signal('SIGHUP')
  await waitFor('the new rule', async () => (await api('root', 'GET', '/v1/event-sync/added/config')).status === 200)
  await writeFile(broker.configFile, stringify({ ...config, eventSync: [{ name: 'added', trigger: { type: 'none', observationPeriod: -1 }, endpoints: [{ eventKey: 'k' }] }] }))
  const refused = broker.waitForLog('the refusal', line => line.event === 'eventsync.reload-refused')
  await broker.signal('SIGHUP')
  t.match((await refused).problems, [/eventSync\[0\]\.trigger\.observationPeriod: -1 is not a duration above 0/])
  t.equal((await api('root', 'GET', '/v1/event-sync/rate/config')).status, 200, 'the rules in force stay')
  t.equal((await api('root', 'GET', '/v1/event-sync/added/config')).status, 200)
  await writeFile(broker.configFile, original)
  await broker.signal('SIGHUP')
  await waitFor('the rule taken out', async () => (await api('root', 'GET', '/v1/event-sync/added/config')).status === 404)
})

t.test('SIGKILL at random points while events flow: no combined event lost, none duplicated (the check dedupes nothing)', async t => {
  let client: MqttClient | undefined
  const flow = { stop: false }
  let sent = 0
  // a publisher that reconnects through the kills; QoS 1, so an event is journaled at least once
  const publishing = (async () => {
    while (!flow.stop) {
      try {
        client = await connectAsync(mqttUrl(), { username: 'infra', password: USERS.infra, reconnectPeriod: 0, connectTimeout: 2000, clientId: 'crash-publisher', clean: true })
        client.on('error', () => {})
        while (!flow.stop && client.connected) {
          const batch = Array.from({ length: 20 }, () => client!.publishAsync(sent++ % 5 === 4 ? 'eventsync/crash/event/y' : `gerrit/p${sent % 3}/x`, String(sent), { qos: 1 }))
          await Promise.race([Promise.allSettled(batch), sleep(2000)])
          await sleep(10)
        }
      } catch {}
      client?.end(true)
      await sleep(100)
    }
  })()
  let kills = 0
  for (; kills < 5; kills++) {
    await sleep(700 + Math.floor(Math.random() * 1500))
    await broker.signal('SIGKILL')
    await broker.launch()
  }
  await sleep(1500)
  flow.stop = true
  await publishing
  t.ok(sent > 1000, `${sent} publishes attempted through ${kills} kills`)

  const state = await waitFor('nothing pending', async () => {
    const s = await api('root', 'GET', '/v1/event-sync/crash/state')
    return s.status === 200 && s.json.pending === 0 ? s.json : undefined
  }, 30_000, 500)
  await sleep(1000)
  const entries = await readHistory(api, 'root', ['gerrit/+/x', 'eventsync/crash/#'])
  const expected = windowsOf(entries, [topic => /^gerrit\/[^/]+\/x$/.test(topic), topic => topic === 'eventsync/crash/event/y'], RATE_PERIOD_S * 1000)
  t.equal(state.pending, 0)
  t.ok(expected.length > 50, `${expected.length} windows completed`)
  const outputs = outputsIn(entries, 'eventsync/crash')
  if (process.env.DEBUG_ES === '1') {
    const seen = new Map<number, number>()
    for (const e of entries.filter(e => e.topic === 'eventsync/crash' && e.user === undefined)) {
      const c = (e.payload as Output).triggerOffset
      if (seen.has(c)) console.error('DUP', c, 'first at', seen.get(c), 'again at', e.offset)
      seen.set(c, e.offset)
    }
    console.error(JSON.stringify(broker.logs.filter(l => typeof l.event === 'string' && (l.event.startsWith('eventsync') || l.event === 'broker.started')).map(l => [l.event, l.triggerOffset, l.time])))
  }
  t.same(outputs.map(o => o.triggerOffset), expected, 'every completed window published once, in order')
  t.equal(new Set(outputs.map(o => o.eventID)).size, outputs.length, 'no duplicate eventID')
  t.same(broker.logs.filter(l => l.event === 'eventsync.already-published' || l.event === 'eventsync.gap'), [], 'the fold met every combined event, and read every offset')
})
