// Event sync: events/s into a rule with 3 endpoints sustained, with the decision's latency
// (publish of the event that completes a window to receipt of the combined event) beside the
// bare limit, the same events' own publish-to-delivery on a broker with no rule; and the
// memory a rule holds per million events in its observation period, against the same broker
// and events with no rule. Same machine, one run.
//   npm run bench:event-sync -- [--rates 1000,3000,5000,7000,9000] [--seconds 5] [--held 1000000]
//                               [--only rate,memory]
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import mqtt from 'mqtt'
import { fmt } from './lib/latency.mjs'
import { freePort, processCpuSeconds, rssBytes, startFirehose } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    rates: { type: 'string', default: '1000,3000,5000,7000,9000' },
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
const run = promisify(execFile)
const PUBLISHER = new URL('./lib/paced-publisher.mjs', import.meta.url).pathname
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
async function rateStep (broker, rate, withRule, seconds = SECONDS) {
  const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0, username: 'bench', password: USERS.bench, clientId: `probe-${rate}` })
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
  const cpu = await processCpuSeconds(broker.pid)
  const { stdout } = await run(process.execPath, [PUBLISHER, String(broker.port), 'bench', USERS.bench, String(rate), String(seconds), 'bench/sync/a', 'bench/sync/b', 'bench/sync/c'])
  const { sent: total, seconds: elapsed } = JSON.parse(stdout)
  // what is still coming (the combined events with a rule, the c events without): until all
  // have come, or none has for 5 s, 60 s at most. Past the sustained rate the combined events
  // queue for seconds, with pauses: a shorter wait let them be counted in the next step
  const awaited = withRule ? decided : delivered
  for (let last = awaited.length, quiet = 0, waited = 0; awaited.length < total / 3 && quiet < 5 && waited < 60; waited++) {
    await sleep(1000)
    quiet = awaited.length === last ? quiet + 1 : 0
    last = awaited.length
  }
  const load = (await processCpuSeconds(broker.pid) - cpu) / elapsed
  await probe.endAsync()
  decided.sort((a, b) => a - b)
  delivered.sort((a, b) => a - b)
  return {
    rate,
    sent: total / elapsed,
    expected: total / 3,
    decided: { count: decided.length, p50: quantile(decided, 0.5), p99: quantile(decided, 0.99), max: decided[decided.length - 1] ?? NaN },
    delivered: { count: delivered.length, p50: quantile(delivered, 0.5), p99: quantile(delivered, 0.99) },
    load
  }
}

async function rateSection () {
  // the same steps on a broker with the rule, and on one without it (the bare limit: the
  // events' own delivery, journaled as ever)
  const results = {}
  for (const withRule of [true, false]) {
    const broker = await startBroker(withRule ? 'rate' : 'bare', withRule
      ? [{ name: 'three', trigger: { type: 'window', observationPeriod: 1 }, endpoints: [{ eventKey: 'a', topic: 'bench/sync/a' }, { eventKey: 'b', topic: 'bench/sync/b' }, { eventKey: 'c', topic: 'bench/sync/c' }] }]
      : [])
    const steps = []
    try {
      await rateStep(broker, 1000, withRule, 2) // warm-up, not reported
      for (const rate of RATES) steps.push(await rateStep(broker, rate, withRule))
    } finally {
      await broker.stop()
    }
    results[withRule ? 'rule' : 'bare'] = steps
  }
  console.log(`\n| events/s into 3 endpoints (every third completes a window), ${SECONDS} s a step | combined events | decision p50 / p99 / max ms | broker CPU | no rule: the event's delivery p50 / p99 ms | broker CPU |`)
  console.log('|---|---|---|---|---|---|')
  results.rule.forEach((s, i) => {
    const b = results.bare[i]
    console.log(`| ${fmt(s.sent)} | ${fmt(s.decided.count)} of ${fmt(s.expected)} | ${fmt(s.decided.p50)} / ${fmt(s.decided.p99)} / ${fmt(s.decided.max)} | ${(100 * s.load).toFixed(0)}% | ${fmt(b.delivered.p50)} / ${fmt(b.delivered.p99)} | ${(100 * b.load).toFixed(0)}% |`)
  })
  const sustained = results.rule.filter(s => s.decided.count === s.expected && s.decided.p99 < P99_BOUND_MS)
  const bare = results.bare.filter(s => s.delivered.count === s.expected && s.delivered.p99 < P99_BOUND_MS)
  const best = xs => xs.length === 0 ? NaN : Math.max(...xs.map(s => s.sent))
  console.log(`\nsustained (every combined event, p99 under ${P99_BOUND_MS} ms): ${fmt(best(sustained))} events/s; with no rule, the events' own delivery: ${fmt(best(bare))} events/s; ratio ${(best(sustained) / best(bare)).toFixed(2)}`)
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
      const before = { rss: await rssBytes(broker.pid), heap: await metric(broker, 'firehose_nodejs_heap_size_used_bytes') }
      const started = Date.now()
      await flood(broker, 'bench/held/a', HELD)
      const seconds = (Date.now() - started) / 1000
      if (withRule) {
        const held = async () => (await (await fetch(`http://127.0.0.1:${broker.wsPort}/v1/event-sync/held/state`, { headers: AUTH })).json()).endpoints.a.events
        for (let i = 0; i < 100 && await held() < HELD; i++) await sleep(200)
        if (await held() !== HELD) throw new Error(`the rule holds ${await held()} events, not ${HELD}`)
      }
      await sleep(5000) // let the young generation be collected and the journal's writes settle
      figures.push({ withRule, seconds, rss: await rssBytes(broker.pid) - before.rss, heap: await metric(broker, 'firehose_nodejs_heap_size_used_bytes') - before.heap, external: await metric(broker, 'firehose_nodejs_external_memory_bytes') })
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
  console.log(`\nwhat the rule holds, per million events: ${perMillion(rule.external - none.external)} of external memory (its offsets and timestamps, outside the JS heap); the RSS and heap differences (${perMillion(rule.rss - none.rss)}, ${perMillion(rule.heap - none.heap)}) are within what collection timing moves them by`)
}

console.log(`Event sync, ${SECONDS} s a step; Node ${process.version}`)
try {
  if (ONLY.has('rate')) await rateSection()
  if (ONLY.has('memory')) await memorySection()
} finally {
  await rm(root, { recursive: true, force: true })
}
