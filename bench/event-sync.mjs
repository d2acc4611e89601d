// Event sync: events/s into a rule with 3 endpoints sustained, with the decision's latency
// (publish of the event that completes a window to receipt of the combined event) beside the
// bare limit, the same event's own publish-to-delivery latency through the same broker; and the
// memory a rule holds per million events in its observation period, against the same broker
// and events with no rule. Same machine, one run.
//   npm run bench:event-sync -- [--rates 1000,2000,5000,10000,20000] [--seconds 5] [--held 1000000]
//                               [--only rate,memory]
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { fmt } from './lib/latency.mjs'
import { freePort, processCpuSeconds, rssBytes, startFirehose } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '1000,2000,5000,10000,20000' },
    seconds: { type: 'string', default: '5' },
    held: { type: 'string', default: '1000000' },
    only: { type: 'string', default: 'rate,memory' }
  }
})
const RATES = values.rates.split(',').map(Number)
const SECONDS = Number(values.seconds)
const HELD = Number(values.held)
const ONLY = new Set(values.only.split(','))
for (const section of ONLY) if (!['rate', 'memory'].includes(section)) throw new Error(`--only: unknown section "${section}"`)
const USERS = { bench: 'bench-password' }
const AUTH = { authorization: `Basic ${Buffer.from(`bench:${USERS.bench}`).toString('base64')}` }
/** p99 under this, and every combined event received: the rate is sustained */
const P99_BOUND_MS = 100
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const root = await mkdtemp(join(tmpdir(), 'firehose-bench-event-sync-'))

const startBroker = async (name, rules) => {
  const adminPort = await freePort()
  const broker = await startFirehose({
    users: USERS,
    extra: {
      persistence: { dir: join(root, name) },
      journal: { topics: ['#'], retention: { maxAge: '30d', maxBytes: '100GiB' } },
      subscriptions: false,
      eventSync: rules,
      admin: { host: '127.0.0.1', port: adminPort }
    }
  })
  return { ...broker, adminPort }
}

async function metric (broker, name) {
  const text = await (await fetch(`http://127.0.0.1:${broker.adminPort}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith(`${name} `))
  return line === undefined ? NaN : Number(line.split(' ')[1])
}

const quantile = (sorted, q) => sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

/**
 * Publishes `rate` events/s for `seconds`, to a, b and c in turn (every c completes a window of
 * the rule), each stamped with its send time (CLOCK_MONOTONIC ns, comparable across processes);
 * the probe times the combined events (by the c they hold) and, for the bare limit, the c
 * events themselves.
 */
async function rateStep (broker, rate) {
  const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0, username: 'bench', password: USERS.bench, clientId: `probe-${rate}` })
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0, username: 'bench', password: USERS.bench, clientId: `pub-${rate}` })
  const decided = []
  const delivered = []
  probe.on('message', (topic, payload) => {
    const at = process.hrtime.bigint()
    if (topic === 'bench/sync/c') {
      delivered.push(Number(at - BigInt(JSON.parse(payload.toString()).t)) / 1e6)
      return
    }
    const list = JSON.parse(payload.toString()).events.c.events
    decided.push(Number(at - BigInt(JSON.parse(list[list.length - 1].content).t)) / 1e6)
  })
  await probe.subscribeAsync(['eventsync/three', 'bench/sync/c'], { qos: 0 })
  const total = Math.floor(rate * SECONDS / 3) * 3
  const cpu = await processCpuSeconds(broker.pid)
  const started = Date.now()
  for (let sent = 0; sent < total;) {
    const due = Math.min(total, Math.floor((Date.now() - started) / 1000 * rate))
    for (; sent < due; sent++) pub.publish(`bench/sync/${'abc'[sent % 3]}`, JSON.stringify({ seq: sent, t: String(process.hrtime.bigint()) }), { qos: 0 })
    await sleep(2)
  }
  const seconds = (Date.now() - started) / 1000
  // what is still coming: until nothing arrives for a second (at most 30 s)
  for (let last = -1, waited = 0; last !== decided.length && waited < 30; waited++) {
    last = decided.length
    await sleep(1000)
  }
  const load = (await processCpuSeconds(broker.pid) - cpu) / seconds
  await pub.endAsync()
  await probe.endAsync()
  decided.sort((a, b) => a - b)
  delivered.sort((a, b) => a - b)
  return {
    rate,
    sent: total / seconds,
    expected: total / 3,
    decided: { count: decided.length, p50: quantile(decided, 0.5), p99: quantile(decided, 0.99), max: decided[decided.length - 1] ?? NaN },
    delivered: { count: delivered.length, p50: quantile(delivered, 0.5), p99: quantile(delivered, 0.99) },
    load
  }
}

async function rateSection () {
  const broker = await startBroker('rate', [{
    name: 'three',
    trigger: { type: 'window', observationPeriod: 1 },
    endpoints: [{ eventKey: 'a', topic: 'bench/sync/a' }, { eventKey: 'b', topic: 'bench/sync/b' }, { eventKey: 'c', topic: 'bench/sync/c' }]
  }])
  const steps = []
  try {
    for (const rate of RATES) steps.push(await rateStep(broker, rate))
  } finally {
    await broker.stop()
  }
  console.log(`\n| events/s into 3 endpoints (every third completes a window), ${SECONDS} s | combined events | decision p50 / p99 / max ms | the same event's delivery p50 / p99 ms (bare) | p99 ratio | broker CPU |`)
  console.log('|---|---|---|---|---|---|')
  for (const s of steps) {
    console.log(`| ${fmt(s.sent)} | ${fmt(s.decided.count)} of ${fmt(s.expected)} | ${fmt(s.decided.p50)} / ${fmt(s.decided.p99)} / ${fmt(s.decided.max)} | ${fmt(s.delivered.p50)} / ${fmt(s.delivered.p99)} | ${(s.decided.p99 / s.delivered.p99).toFixed(1)}× | ${(100 * s.load).toFixed(0)}% |`)
  }
  const sustained = steps.filter(s => s.decided.count === s.expected && s.decided.p99 < P99_BOUND_MS)
  const bare = steps.filter(s => s.delivered.count === s.expected && s.delivered.p99 < P99_BOUND_MS)
  const best = xs => xs.length === 0 ? NaN : Math.max(...xs.map(s => s.sent))
  console.log(`\nsustained (every combined event, p99 under ${P99_BOUND_MS} ms): ${fmt(best(sustained))} events/s; the bare delivery of the same events: ${fmt(best(bare))} events/s; ratio ${(best(sustained) / best(bare)).toFixed(2)}`)
}

/** Publishes `count` events to `topic` as fast as the broker takes them (QoS 1, 500 in flight). */
async function flood (broker, topic, count) {
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0, username: 'bench', password: USERS.bench, clientId: `flood-${topic}` })
  const payload = JSON.stringify({ change: 12345, project: 'openstack/nova', type: 'change-merged' })
  const inflight = new Set()
  for (let i = 0; i < count; i++) {
    const p = pub.publishAsync(topic, payload, { qos: 1 })
    inflight.add(p)
    p.finally(() => inflight.delete(p))
    if (inflight.size >= 500) await Promise.race(inflight)
  }
  await Promise.all(inflight)
  await pub.endAsync()
}

async function memorySection () {
  const figures = []
  for (const withRule of [false, true]) {
    const broker = await startBroker(withRule ? 'held' : 'none', withRule
      ? [{ name: 'held', trigger: { type: 'window', observationPeriod: '1h' }, endpoints: [{ eventKey: 'a', topic: 'bench/held/a' }, { eventKey: 'never', topic: 'bench/held/never' }] }]
      : [])
    try {
      const before = { rss: await rssBytes(broker.pid), heap: await metric(broker, 'nodejs_heap_size_used_bytes') }
      const started = Date.now()
      await flood(broker, 'bench/held/a', HELD)
      const seconds = (Date.now() - started) / 1000
      if (withRule) {
        const held = async () => (await (await fetch(`http://127.0.0.1:${broker.wsPort}/v1/event-sync/held/state`, { headers: AUTH })).json()).endpoints.a.events
        for (let i = 0; i < 100 && await held() < HELD; i++) await sleep(200)
        if (await held() !== HELD) throw new Error(`the rule holds ${await held()} events, not ${HELD}`)
      }
      await sleep(5000) // let the young generation be collected and the journal's writes settle
      figures.push({ withRule, seconds, rss: await rssBytes(broker.pid) - before.rss, heap: await metric(broker, 'nodejs_heap_size_used_bytes') - before.heap, external: await metric(broker, 'nodejs_external_memory_bytes') })
    } finally {
      await broker.stop()
    }
  }
  const [none, rule] = figures
  const perMillion = bytes => `${(bytes / HELD * 1e6 / 2 ** 20).toFixed(1)} MiB`
  console.log(`\n| ${fmt(HELD)} events held in a rule's period (an endpoint that never reports) | growth of RSS | growth of the JS heap (used) | external memory | publish time |`)
  console.log('|---|---|---|---|---|')
  console.log(`| no rule (the journal alone) | ${perMillion(none.rss)} | ${perMillion(none.heap)} | ${perMillion(none.external)} | ${none.seconds.toFixed(1)} s |`)
  console.log(`| a rule holding them all | ${perMillion(rule.rss)} | ${perMillion(rule.heap)} | ${perMillion(rule.external)} | ${rule.seconds.toFixed(1)} s |`)
  console.log(`\nwhat the rule holds, per million events: RSS ${perMillion(rule.rss - none.rss)}, heap ${perMillion(rule.heap - none.heap)} (${((rule.rss - none.rss) / HELD).toFixed(1)} bytes an event resident)`)
}

console.log(`Event sync, ${SECONDS} s a step; Node ${process.version}`)
try {
  if (ONLY.has('rate')) await rateSection()
  if (ONLY.has('memory')) await memorySection()
} finally {
  await rm(root, { recursive: true, force: true })
}
