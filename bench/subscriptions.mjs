// Subscriptions: push deliveries against a bare POST loop to the same receiver, publish-to-receipt
// latency of push at a steady rate, pull-and-ack against a bare iteration of the journal, and
// MQTT fan-out with push subscriptions at work against none. Side by side, same machine, one run.
//   npm run bench:subscriptions -- [--events 20000] [--rate 1000] [--seconds 5] [--rounds 2]
//                                  [--subscribers 200] [--push-subscriptions 100]
//                                  [--only push,latency,pull,fanout]
import { fork } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Agent as UndiciAgent } from 'undici'
import { cpuSeconds, flood, openPublisher } from './lib/lean-client.mjs'
import { bareIteration, eventPayload, fillJournal, now } from './lib/journal-bench.mjs'
import { fmt, median } from './lib/latency.mjs'
import { openNativeSubscribers } from './lib/native.mjs'
import { processCpuSeconds, startFirehose } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '20000' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    subscribers: { type: 'string', default: '200' },
    'push-subscriptions': { type: 'string', default: '100' },
    only: { type: 'string', default: 'push,latency,pull,fanout' }
  }
})
const EVENTS = Number(values.events)
const RATE = Number(values.rate)
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const SUBSCRIBERS = Number(values.subscribers)
const PUSH_SUBSCRIPTIONS = Number(values['push-subscriptions'])
const ONLY = new Set(values.only.split(','))
for (const section of ONLY) {
  if (!['push', 'latency', 'pull', 'fanout'].includes(section)) throw new Error(`--only: unknown section "${section}"`)
}
const USERS = { bench: 'bench-password' }
const AUTH = { authorization: `Basic ${Buffer.from(`bench:${USERS.bench}`).toString('base64')}` }
const CONCURRENCY = 4 // subscriptions.push.concurrency, the default: the bare loop keeps as many POSTs in flight
const LIMITS = { maxConnections: 100000, maxConnectionsPerIp: 100000 }
const RETENTION = { maxAge: '3650d', maxBytes: '100GiB' }
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const root = await mkdtemp(join(tmpdir(), 'firehose-bench-subscriptions-'))
const saturated = []

const startBroker = async (name, journalDir) => await startFirehose({
  users: USERS,
  extra: {
    persistence: { dir: join(root, name) },
    journal: { topics: ['#'], retention: RETENTION, ...(journalDir === undefined ? {} : { dir: journalDir }) },
    subscriptions: { push: { allowedEndpoints: ['http://127.0.0.1:*'], concurrency: CONCURRENCY } },
    limits: LIMITS
  }
})

async function api (broker, method, path, body) {
  const res = await fetch(`http://127.0.0.1:${broker.wsPort}${path}`, { method, headers: { ...AUTH, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) })
  const text = await res.text()
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text === '' ? undefined : JSON.parse(text)
}

/** The webhook receiver, a process of its own (bench/lib/push-receiver.mjs). */
async function startReceiver () {
  const child = fork(new URL('./lib/push-receiver.mjs', import.meta.url).pathname, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const next = () => new Promise(resolve => child.once('message', resolve))
  const { port } = await next()
  return {
    url: `http://127.0.0.1:${port}/hook`,
    pid: child.pid,
    reset: async (stampsSince = 0) => { child.send({ reset: { stampsSince } }); await next() },
    report: async () => { child.send({ report: true }); return await next() },
    stop: () => child.kill()
  }
}

async function waitForCount (receiver, count, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const report = await receiver.report()
    if (report.count >= count) return report
    if (Date.now() > deadline) throw new Error(`the receiver got ${report.count} of ${count}`)
    await sleep(20)
  }
}

/** Publishes `count` events on `topic` (QoS 0, a lean client), and waits until the journal holds them. */
async function publishEvents (broker, topic, count) {
  const before = (await api(broker, 'GET', '/v1/journal')).last
  const publisher = await openPublisher({ port: broker.port, clientId: `bench-fill-${topic}`, username: 'bench', password: USERS.bench })
  for (let i = 0; i < count; i++) {
    if (!publisher.socket.write(publisher.publishPacket(topic, eventPayload(i)))) await new Promise(resolve => publisher.socket.once('drain', resolve))
  }
  for (;;) {
    if ((await api(broker, 'GET', '/v1/journal')).last >= before + count) break
    await sleep(20)
  }
  publisher.close()
}

/** The Pub/Sub envelope the broker POSTs for an event, for the bare loop to send the same bytes. */
const envelopeOf = (seq, payload) => JSON.stringify({
  message: { attributes: { 'event-type': 'bench/push', topic: 'bench/push', offset: String(seq) }, data: payload.toString('base64'), messageId: String(seq), message_id: String(seq), publishTime: new Date().toISOString(), publish_time: new Date().toISOString() },
  subscription: 'bench'
})

// ---- 1. push throughput ----------------------------------------------------------------------

async function pushThroughput (receiver) {
  // the bare limit (the issue's): an undici POST loop with kept-alive connections (the broker's
  // sender is undici too), CONCURRENCY POSTs in flight, the same bytes, no signing
  await receiver.reset()
  const bodies = Array.from({ length: 64 }, (_, i) => Buffer.from(envelopeOf(i, eventPayload(i))))
  const agent = new UndiciAgent()
  const target = new URL(receiver.url)
  const postOnce = async body => {
    const res = await agent.request({ origin: target.origin, path: target.pathname, method: 'POST', headers: { 'content-type': 'application/json' }, body })
    await res.body.dump()
  }
  let sent = 0
  const cpu = process.cpuUsage()
  const started = performance.now()
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (sent < EVENTS) await postOnce(bodies[sent++ % bodies.length])
  }))
  await agent.close()
  const bareSeconds = (performance.now() - started) / 1000
  const bare = { perSecond: EVENTS / bareSeconds, load: cpuSeconds(cpu) / bareSeconds }
  if (bare.load > 0.9) saturated.push('the bare POST loop')

  const broker = await startBroker('push')
  try {
    await publishEvents(broker, 'bench/push', EVENTS)
    await receiver.reset()
    const brokerCpu = await processCpuSeconds(broker.pid)
    const pushStarted = performance.now()
    await api(broker, 'POST', '/v1/subscriptions', { name: 'bench', topics: ['bench/push'], type: 'push', startAt: 'earliest', push: { endpoint: receiver.url } })
    await waitForCount(receiver, EVENTS)
    const seconds = (performance.now() - pushStarted) / 1000
    const pushed = { perSecond: EVENTS / seconds, load: (await processCpuSeconds(broker.pid) - brokerCpu) / seconds }
    const view = await api(broker, 'GET', '/v1/subscriptions/bench')
    console.log(`\n| push, ${fmt(EVENTS)} events of 1 KiB, ${CONCURRENCY} in flight | POSTs/s | CPU (client) | ratio |`)
    console.log('|---|---|---|---|')
    console.log(`| bare POST loop (undici, keep-alive, no signature) | ${fmt(bare.perSecond)} | ${(100 * bare.load).toFixed(0)}% (bench process) | 1.00 |`)
    console.log(`| broker push (JWT EdDSA + Standard Webhooks signature, ack written per event) | ${fmt(pushed.perSecond)} | ${(100 * pushed.load).toFixed(0)}% (broker) | **${(pushed.perSecond / bare.perSecond).toFixed(2)}** (target ≥ 0.5) |`)
    console.log(`\npushed ${fmt(view.counters.pushOk)} (failed ${fmt(view.counters.pushFailed)}); the receiver counted ${fmt((await receiver.report()).count)}`)
    if (ONLY.has('latency')) await pushLatency(broker, receiver)
  } finally {
    await broker.stop()
  }
}

// ---- 2. push latency at a steady rate -------------------------------------------------------

async function pushLatency (broker, receiver) {
  await api(broker, 'POST', '/v1/subscriptions', { name: 'latency', topics: ['bench/latency'], type: 'push', push: { endpoint: receiver.url } })
  const publisher = await openPublisher({ port: broker.port, clientId: 'bench-latency', username: 'bench', password: USERS.bench })
  const since = now() + 1e9 // a second of warm-up is not counted
  await receiver.reset(since)
  const total = RATE * (SECONDS + 1)
  const started = performance.now()
  // the events stamped at or after `since`: those the receiver times (it counts by the stamp)
  let expected = 0
  for (let i = 0; i < total; i++) {
    // on schedule: the i-th event at i / RATE seconds
    const due = started + (i * 1000) / RATE
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    const stamp = now()
    if (stamp >= since) expected++
    publisher.socket.write(publisher.publishPacket('bench/latency', eventPayload(i, stamp)))
  }
  await sleep(2000)
  publisher.close()
  const { latencies } = await receiver.report()
  const sorted = latencies.sort((a, b) => a - b)
  const q = p => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
  console.log(`\n| push latency, ${RATE} events/s of 1 KiB for ${SECONDS} s | p50 ms | p99 ms | max ms | received |`)
  console.log('|---|---|---|---|---|')
  console.log(`| publish (MQTT QoS 0) to receipt (POST) | ${fmt(q(0.5))} | ${fmt(q(0.99))} | ${fmt(sorted.at(-1))} | ${fmt(sorted.length)} of ${fmt(expected)} |`)
}

// ---- 3. pull ---------------------------------------------------------------------------------

/** bench/lib/pull-consumer.mjs on a subscription, until it has pulled and acked EVENTS. */
async function pullConsumer (broker, name, mode) {
  const child = fork(new URL('./lib/pull-consumer.mjs', import.meta.url).pathname, [`http://127.0.0.1:${broker.wsPort}`, AUTH.authorization, name, String(EVENTS), '100', mode], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  let out = ''
  child.stdout.on('data', d => { out += d })
  const code = await new Promise(resolve => child.on('exit', resolve))
  if (code !== 0) throw new Error(`pull-consumer.mjs exited ${code}`)
  return JSON.parse(out)
}

async function pullThroughput () {
  const dir = join(root, 'pull-journal')
  console.log(`filling a journal with ${fmt(EVENTS)} events of 1 KiB...`)
  await fillJournal(dir, EVENTS, 'bench/pull')
  const passes = [await bareIteration(dir), await bareIteration(dir)]
  const bare = passes.reduce((a, b) => a.seconds <= b.seconds ? a : b)
  const broker = await startBroker('pull', dir)
  try {
    const rows = []
    for (const mode of ['serial', 'overlap']) {
      // a fresh subscription from the journal's start for each consumer
      await api(broker, 'POST', '/v1/subscriptions', { name: `pull-${mode}`, topics: ['bench/pull'], startAt: 'earliest' })
      const brokerCpu = await processCpuSeconds(broker.pid)
      const started = performance.now()
      const consumer = await pullConsumer(broker, `pull-${mode}`, mode)
      const seconds = (performance.now() - started) / 1000
      const brokerLoad = (await processCpuSeconds(broker.pid) - brokerCpu) / seconds
      rows.push({ mode, perSecond: consumer.events / consumer.seconds, load: consumer.load, brokerLoad })
    }
    const ratio = perSecond => (perSecond / (bare.events / bare.seconds)).toFixed(2)
    console.log(`\n| pull and ack, ${fmt(EVENTS)} events of 1 KiB, batches of 100 | events/s | CPU (consumer / broker) | ratio to bare |`)
    console.log('|---|---|---|---|')
    console.log(`| bare LevelDB iteration of the journal (values only; best of 2) | ${fmt(bare.events / bare.seconds)} | ${(100 * bare.load).toFixed(0)}% | 1.00 |`)
    for (const row of rows) {
      const what = row.mode === 'serial' ? 'pull 100, ack 100, one after the other' : 'pull 100 while the previous 100 are acked'
      console.log(`| ${what} (bench/lib/pull-consumer.mjs) | ${fmt(row.perSecond)} | ${(100 * row.load).toFixed(0)}% / ${(100 * row.brokerLoad).toFixed(0)}% | **${ratio(row.perSecond)}** (target ≥ 0.3) |`)
    }
  } finally {
    await broker.stop()
  }
}

// ---- 4. fan-out with push subscriptions at work -------------------------------------------------

const FANOUT_PAYLOAD = eventPayload(0)

async function fanOut (broker, label) {
  const subs = await openNativeSubscribers({ port: broker.port, count: SUBSCRIBERS, filter: 'bench/fanout', idPrefix: label })
  const publisher = await openPublisher({ port: broker.port, clientId: `${label}-pub`, username: 'bench', password: USERS.bench })
  const packet = publisher.publishPacket('bench/fanout', FANOUT_PAYLOAD)
  await flood(publisher, packet, 1, subs) // warm-up
  await sleep(300)
  const before = subs.bytes()
  const brokerCpu = await processCpuSeconds(broker.pid)
  const started = Date.now()
  await flood(publisher, packet, SECONDS, subs)
  const elapsed = (Date.now() - started) / 1000
  const perSecond = (subs.bytes() - before) / packet.length / elapsed
  const brokerLoad = (await processCpuSeconds(broker.pid) - brokerCpu) / elapsed
  publisher.close()
  await subs.close()
  return { perSecond, brokerLoad }
}

/** 10 events/s on the push subscriptions' topics (bench/push/#), so that every one of them has work: returns the stop. */
function pushTraffic (broker) {
  const run = { stopped: false }
  const done = (async () => {
    const publisher = await openPublisher({ port: broker.port, clientId: 'bench-push-traffic', username: 'bench', password: USERS.bench })
    for (let i = 0; !run.stopped; i++) {
      publisher.socket.write(publisher.publishPacket(`bench/push/${i % 10}`, eventPayload(i)))
      await sleep(100) // 10 events/s, each for every push subscription
    }
    publisher.close()
  })()
  return async () => { run.stopped = true; await done }
}

async function fanOutWithPush (receiver) {
  const none = await startBroker('fanout-none')
  const busy = await startBroker('fanout-push')
  try {
    for (let i = 0; i < PUSH_SUBSCRIPTIONS; i++) {
      await api(busy, 'POST', '/v1/subscriptions', { name: `push-${i}`, topics: ['bench/push/#'], type: 'push', push: { endpoint: receiver.url } })
    }
    await receiver.reset()
    const stops = [pushTraffic(none), pushTraffic(busy)]
    const figures = { none: [], busy: [] }
    const load = { none: [], busy: [] }
    for (let round = 0; round < ROUNDS; round++) {
      for (const [key, broker] of [['none', none], ['busy', busy]]) {
        const run = await fanOut(broker, `${key}-${round}`)
        figures[key].push(run.perSecond)
        load[key].push(run.brokerLoad)
      }
      console.log(`  round ${round + 1}: none ${fmt(figures.none.at(-1))}, ${PUSH_SUBSCRIPTIONS} pushing ${fmt(figures.busy.at(-1))} deliveries/s`)
    }
    for (const stop of stops) await stop()
    const report = await receiver.report()
    const n = median(figures.none)
    const b = median(figures.busy)
    console.log(`\n| MQTT fan-out, ${SUBSCRIBERS} TCP subscribers, 1 KiB QoS 0 (median of ${ROUNDS}) | deliveries/s | broker CPU | ratio |`)
    console.log('|---|---|---|---|')
    console.log(`| no subscriptions | ${fmt(n)} | ${(100 * median(load.none)).toFixed(0)}% | 1.00 |`)
    console.log(`| ${PUSH_SUBSCRIPTIONS} push subscriptions at work (10 events/s each, ${fmt(10 * PUSH_SUBSCRIPTIONS)} POSTs/s) | ${fmt(b)} | ${(100 * median(load.busy)).toFixed(0)}% | **${(b / n).toFixed(2)}** (target ≥ 0.8) |`)
    console.log(`\nthe receiver counted ${fmt(report.count)} POSTs meanwhile`)
  } finally {
    await none.stop()
    await busy.stop()
  }
}

console.log(`Subscriptions: ${fmt(EVENTS)} events, ${RATE}/s for ${SECONDS} s, ${ROUNDS} rounds, ${SUBSCRIBERS} subscribers, ${PUSH_SUBSCRIPTIONS} push subscriptions; Node ${process.version}`)
const receiver = await startReceiver()
try {
  if (ONLY.has('push') || ONLY.has('latency')) await pushThroughput(receiver)
  if (ONLY.has('pull')) await pullThroughput()
  if (ONLY.has('fanout')) await fanOutWithPush(receiver)
} finally {
  receiver.stop()
  await rm(root, { recursive: true, force: true })
}
if (saturated.length > 0) console.log(`\nsaturated a core: ${saturated.join(', ')} (its figure is a floor)`)
