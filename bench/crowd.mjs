// Many WebSocket subscribers kept in real time: for each broker, the highest rate of messages to
// all of them at which p99 publish-to-delivery stays under a limit with every delivery made,
// and its resident memory at the end with them connected. Same machine, one run.
//   npm run bench:crowd -- [--subscribers 10000] [--transport ws|tcp] [--seconds 5] [--limit 100] [--journal on|off]
// The rate search: 1 msg/s, doubled while a step passes, then halved between the last pass and
// the first fail until they are within 15%. A step passes when p99 < limit, every subscriber got
// every message and none was disconnected. Between steps the brokers drain what they hold.
// When one message alone takes longer than the limit to reach every subscriber (10,000 over
// WebSocket on 2 cores, for both brokers), the limit is twice the slower broker's p99 for single
// messages (0.5 msg/s): the highest rate each keeps up with, latency not growing with the load.
import { parseArgs } from 'node:util'
import { connectPublisher, fmt, openStampedSubscribers, publishStamped } from './lib/latency.mjs'
import { journalOption, machineSummary, settledRss, startFirehose, startMosquitto } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '10000' },
    transport: { type: 'string', default: 'ws' },
    seconds: { type: 'string', default: '5' },
    limit: { type: 'string', default: '100' },
    // Firehose keeps a journal of every publish, as a broker with persistence does
    journal: { type: 'string', default: 'on' }
  }
})
const JOURNAL = journalOption(values.journal)
const COUNT = Number(values.subscribers)
const TRANSPORT = values.transport
const SECONDS = Number(values.seconds)
const LIMIT = Number(values.limit)
const USERS = { bench: 'bench-password' }
const TOPIC = 'bench/crowd'
const PAYLOAD = 1024
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Waits until the subscribers' byte count has not moved for a second (at most 60 s). */
async function drained (subs) {
  let last = -1
  for (let i = 0; i < 60 && subs.bytes() !== last; i++) {
    last = subs.bytes()
    await sleep(1000)
  }
}

async function step (subs, pub, rate, limit) {
  await drained(subs)
  await subs.mark() // counts start here
  const sent = await publishStamped(pub, TOPIC, rate, SECONDS, PAYLOAD)
  await drained(subs)
  const { p50, p99, samples, disconnected } = await subs.mark()
  const expected = sent * COUNT
  const pass = p99 < limit && samples === expected && disconnected === 0
  console.log(`    ${String(rate).padStart(6)} msg/s: p50 ${fmt(p50)} ms, p99 ${fmt(p99)} ms, ${samples}/${expected} deliveries${disconnected ? `, ${disconnected} disconnected` : ''} — ${pass ? 'pass' : 'fail'}`)
  return { rate, p50, p99, samples, expected, disconnected, pass }
}

/** `COUNT` stamped subscribers on `broker`, and a publisher. */
async function crowd (name, broker) {
  const port = TRANSPORT === 'ws' ? broker.wsPort : broker.port
  const connecting = Date.now()
  const subs = await openStampedSubscribers({ port, transport: TRANSPORT, count: COUNT, idPrefix: `${name}-crowd`, topic: TOPIC, payloadSize: PAYLOAD })
  console.log(`  ${name}: ${COUNT} ${TRANSPORT} subscribers connected in ${((Date.now() - connecting) / 1000).toFixed(1)} s`)
  const pub = await connectPublisher({ port: broker.port, username: 'bench', password: USERS.bench, clientId: `${name}-crowd-pub` })
  return { broker, subs, pub }
}

/** The highest rate that passes under `limit`, searched as the header says. */
async function search (name, { subs, pub }, limit) {
  console.log(`  ${name}:`)
  let best
  let failed
  for (let rate = 1; rate <= 1024; rate *= 2) {
    const result = await step(subs, pub, rate, limit)
    if (!result.pass) { failed = result; break }
    best = result
  }
  if (best === undefined) {
    for (let rate = 0.5; rate >= 0.125 && best === undefined; rate /= 2) {
      const result = await step(subs, pub, rate, limit)
      if (result.pass) best = result
    }
  } else if (failed !== undefined) {
    let hi = failed.rate
    while (hi / best.rate > 1.15) {
      const rate = Math.round((best.rate + hi) / 2 * 10) / 10
      const result = await step(subs, pub, rate, limit)
      if (result.pass) best = result
      else hi = rate
    }
  }
  return best
}

console.log(`Crowd: ${COUNT} ${TRANSPORT} subscribers on bench/#, 1 KiB QoS 0, ${SECONDS} s per step, p99 limit ${LIMIT} ms; ` +
  machineSummary({ mosquitto: true }))
const firehose = await crowd('firehose', await startFirehose({ users: USERS, journal: JOURNAL }))
const mosquitto = await crowd('mosquitto', await startMosquitto())
const results = {}
try {
  // one message to every subscriber, at a rate far below either broker's capacity, after a step
  // not counted (the first messages after 10,000 connections meet caches and heaps still settling)
  console.log('  warm-up, not counted:')
  for (const side of [firehose, mosquitto]) await step(side.subs, side.pub, 0.5, Infinity)
  console.log(`  the time one message takes to reach all ${COUNT} (0.5 msg/s, ${SECONDS} s):`)
  const floor = { firehose: await step(firehose.subs, firehose.pub, 0.5, Infinity), mosquitto: await step(mosquitto.subs, mosquitto.pub, 0.5, Infinity) }
  const limit = Math.max(LIMIT, 2 * Math.max(floor.firehose.p99, floor.mosquitto.p99))
  if (limit > LIMIT) console.log(`  single messages already take over ${LIMIT} ms to reach all: the limit for both is twice the slower p99 there, ${fmt(limit)} ms`)
  for (const [name, side] of [['firehose', firehose], ['mosquitto', mosquitto]]) {
    const best = await search(name, side, limit)
    await drained(side.subs)
    results[name] = { best, floor: floor[name], rss: await settledRss(side.broker.pid) }
  }
  results.limit = limit
} finally {
  for (const side of [firehose, mosquitto]) {
    await side.pub.endAsync()
    await side.subs.close()
    await side.broker.stop()
  }
}
const f = results.firehose
const m = results.mosquitto
const rate = r => r.best === undefined ? NaN : r.best.rate
console.log('\n| figure | Firehose | Mosquitto | ratio Firehose/Mosquitto |')
console.log('|---|---|---|---|')
console.log(`| one message to all ${COUNT}: p50 / p99, ms | ${fmt(f.floor.p50)} / ${fmt(f.floor.p99)} | ${fmt(m.floor.p50)} / ${fmt(m.floor.p99)} | |`)
console.log(`| highest rate with p99 < ${fmt(results.limit)} ms, msg/s to ${COUNT} subscribers | ${fmt(rate(f))} | ${fmt(rate(m))} | ${(rate(f) / rate(m)).toFixed(2)} (higher is better) |`)
console.log(`| deliveries/s at that rate | ${fmt(rate(f) * COUNT)} | ${fmt(rate(m) * COUNT)} | |`)
console.log(`| p50 / p99 at that rate, ms | ${fmt(f.best?.p50 ?? NaN)} / ${fmt(f.best?.p99 ?? NaN)} | ${fmt(m.best?.p50 ?? NaN)} / ${fmt(m.best?.p99 ?? NaN)} | |`)
console.log(`| resident memory at the end, MB | ${fmt(f.rss / 1e6)} | ${fmt(m.rss / 1e6)} | ${(f.rss / m.rss).toFixed(2)} (lower is better) |`)
console.log(`\nmemory target (≤ 2 × Mosquitto's + 100 MB = ${fmt((2 * m.rss + 100e6) / 1e6)} MB): ${f.rss <= 2 * m.rss + 100e6 ? 'met' : 'not met'}`)
