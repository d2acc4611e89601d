// Fan-out: the Firehose broker against Debian's Mosquitto, same load, same machine, one run,
// alternating A B A B. `npm run bench` (raises the open-file limit for the 10,000 connections).
//   npm run bench -- [--subscribers 500] [--seconds 10] [--rounds 2] [--idle 10000] [--window 64] [--rate N]
//                    [--only tcp,ws,stall,latency,idle,idle-ws,floor] [--verbose] [--versus-env NAME=VALUE] [--journal on|off]
//                    [--sweep 2] [--publisher-nagle]
// Firehose keeps a journal of every publish (topics `#`) unless `--journal off`.
// `--sweep MS`: how long the fan-out subscribers (bench/lib/subscribers.c) let deliveries pile up
// between two reads, which is also how often they report them to the closed-loop publisher; at
// window 20 the default 2 ms is what paces a broker that keeps up (bench/README.md).
// The latency publisher sets TCP_NODELAY unless `--publisher-nagle` (mqtt.js' default: Nagle's
// algorithm on, see bench/lib/latency.mjs).
// Latency runs once per broker per round, the order swapped every round (medians of the rounds),
// each run after 2 s of the same load not counted.
// `floor` adds bench/lib/idealcast.c to the TCP fan-out: the most a batching broker could do here;
// `idle` and `idle-ws` measure memory per idle subscriber on fresh brokers. `--versus-env` puts a
// second Firehose, started with NAME=VALUE in its environment, in Mosquitto's place (to compare
// two variants of a change in one run; the broker reads such a switch once, at start).
import { parseArgs } from 'node:util'
import mqtt from 'mqtt'
import { cpuSeconds, flood, openPublisher, openSubscribers } from './lib/lean-client.mjs'
import { fmt, measureFanOutLatency, median } from './lib/latency.mjs'
import { openNativeSubscribers, startIdealcast } from './lib/native.mjs'
import { freePort, journalOption, machineSummary, processCpuSeconds, settledRss, startFirehose, startMosquitto } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '500' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    idle: { type: 'string', default: '10000' },
    // deliveries outstanding per subscriber: a smaller window means fewer messages per turn to batch
    window: { type: 'string', default: '64' },
    // messages/s of the latency load (default: half the slower broker's TCP fan-out capacity)
    rate: { type: 'string' },
    only: { type: 'string', default: 'tcp,ws,stall,latency,idle,idle-ws' },
    verbose: { type: 'boolean', default: false },
    'versus-env': { type: 'string' },
    // the figures are with the journal on, as a broker with persistence has it
    journal: { type: 'string', default: 'on' },
    sweep: { type: 'string', default: '2' },
    'publisher-nagle': { type: 'boolean', default: false }
  }
})
const JOURNAL = journalOption(values.journal)
const VERSUS_ENV = values['versus-env'] === undefined ? undefined : /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(values['versus-env'])?.slice(1)
if (values['versus-env'] !== undefined && VERSUS_ENV === undefined) {
  console.error(`--versus-env: expected NAME=VALUE, got ${JSON.stringify(values['versus-env'])}`)
  process.exit(2)
}
const SWEEP_MS = Number(values.sweep)
if (!(SWEEP_MS >= 0.05 && SWEEP_MS < 1000)) {
  console.error(`--sweep: expected milliseconds from 0.05 to 999, got ${JSON.stringify(values.sweep)}`)
  process.exit(2)
}
const SUBSCRIBERS = Number(values.subscribers)
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const IDLE = Number(values.idle)
const WINDOW = Number(values.window)
const ONLY = new Set(values.only.split(','))
const VERBOSE = values.verbose
const USERS = { bench: 'bench-password' }
const PAYLOAD = Buffer.alloc(1024, 'x')
let generatorSaturated = false
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** A Firehose broker as every load here runs it. */
const startOurs = async () => await startFirehose({ users: USERS, journal: JOURNAL })

/** A Firehose broker with `NAME=VALUE` added to its environment, for --versus-env. */
async function startVariant ([name, value]) {
  const before = process.env[name]
  process.env[name] = value
  try {
    return await startOurs()
  } finally {
    if (before === undefined) delete process.env[name]
    else process.env[name] = before
  }
}

/** Deliveries per second to `SUBSCRIBERS` on `bench/#`; `stall` adds one subscriber that stops reading. */
async function fanOut (broker, transport, label, { stall = false } = {}) {
  const port = transport === 'ws' ? broker.wsPort : broker.port
  const subs = await openNativeSubscribers({ port, count: SUBSCRIBERS, filter: 'bench/#', idPrefix: label, transport, sweepMs: SWEEP_MS })
  let stalled
  let stalledClosed = false
  if (stall) {
    stalled = (await openSubscribers({ port: broker.port, count: 1, filter: 'bench/#', idPrefix: `${label}-stalled` })).sockets[0]
    stalled.socket.pause() // a frozen browser tab: connected, reading nothing
    stalled.socket.on('close', () => { stalledClosed = true })
  }
  const publisher = await openPublisher({ port: broker.port, clientId: `${label}-pub`, username: 'bench', password: USERS.bench })
  const packet = publisher.publishPacket('bench/fanout', PAYLOAD)
  // one full MQTT client among the subscribers checks what the byte counts assume: every
  // message arrives, whole, once, in order
  const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${broker.port}`, { reconnectPeriod: 0, clientId: `${label}-probe` })
  const check = { received: 0, bad: 0 }
  probe.on('message', (topic, payload) => {
    check.received++
    if (topic !== 'bench/fanout' || !payload.equals(PAYLOAD)) check.bad++
  })
  await probe.subscribeAsync('bench/#', { qos: 0 })
  const warmUp = await flood(publisher, packet, 1, subs, WINDOW)
  for (let waited = 0; check.received < warmUp && waited < 100; waited++) await sleep(100)
  const publishedBefore = check.received
  await sleep(300)
  const before = subs.bytes()
  const cpu = process.cpuUsage()
  const subsCpu = await processCpuSeconds(subs.pid)
  const brokerCpu = await processCpuSeconds(broker.pid)
  const started = Date.now()
  const published = await flood(publisher, packet, SECONDS, subs, WINDOW)
  const elapsed = (Date.now() - started) / 1000
  const perSecond = (subs.bytes() - before) / packet.length / elapsed
  const generator = Math.max(cpuSeconds(cpu), await processCpuSeconds(subs.pid) - subsCpu) / elapsed
  const brokerLoad = (await processCpuSeconds(broker.pid) - brokerCpu) / elapsed
  if (generator > 0.9) generatorSaturated = true
  if (VERBOSE) console.log(`    ${label}: ${fmt(perSecond)} deliveries/s, broker ${(100 * brokerLoad).toFixed(0)}% CPU, generator ${(100 * generator).toFixed(0)}%`)
  for (let last = -1; check.received !== last;) { // until the probe has caught up
    last = check.received
    await sleep(500)
  }
  const probed = check.received - publishedBefore
  if (probed !== published || check.bad > 0) {
    console.log(`    ${label}: CHECK FAILED: the probe got ${probed} of ${published} messages published, ${check.bad} wrong`)
  } else if (VERBOSE) console.log(`    ${label}: the probe got all ${published} messages`)
  await probe.endAsync()
  publisher.close()
  await subs.close()
  stalled?.socket.destroy()
  return { perSecond, stalledClosed }
}

/**
 * p50/p99 publish-to-delivery over every delivery to `SUBSCRIBERS` at `rate` messages/s, after
 * 2 s of the same load not counted (a broker in service has long compiled its hot path; without
 * it, a Node broker's first round counts its JIT's warm-up in p99).
 */
async function latency (broker, rate, label) {
  return await measureFanOutLatency({ port: broker.port, count: SUBSCRIBERS, rate, seconds: SECONDS, username: 'bench', password: USERS.bench, label, nagle: values['publisher-nagle'], warmUpSeconds: 2 })
}

/**
 * Resident memory per idle subscriber (over `transport`, each subscribed to one topic) on a
 * fresh broker: the growth from `IDLE` / 2 to `IDLE` connections, so costs paid once (caches
 * built on first use, the young generation growing to its size) are not counted per
 * subscriber; and, for reference, the growth from none to `IDLE` divided by `IDLE`.
 */
async function idleMemory (start, transport, label) {
  const broker = await start()
  try {
    const port = transport === 'ws' ? broker.wsPort : broker.port
    const half = Math.floor(IDLE / 2)
    const before = await settledRss(broker.pid)
    const first = await openNativeSubscribers({ port, transport, count: half, filter: 'bench/idle', idPrefix: `${label}-a` })
    const middle = await settledRss(broker.pid)
    const second = await openNativeSubscribers({ port, transport, count: IDLE - half, filter: 'bench/idle', idPrefix: `${label}-b` })
    const end = await settledRss(broker.pid)
    await first.close()
    await second.close()
    return { marginal: (end - middle) / (IDLE - half), average: (end - before) / IDLE }
  } finally {
    await broker.stop()
  }
}

const row = (name, f, m, unit = '', better = 'higher') => {
  const ratio = f / m
  console.log(`| ${name} | ${fmt(f)}${unit} | ${fmt(m)}${unit} | ${ratio.toFixed(2)} (${better} is better) |`)
}

const firehose = await startOurs()
const mosquitto = VERSUS_ENV === undefined ? await startMosquitto() : await startVariant(VERSUS_ENV)
const floor = ONLY.has('floor') ? await startIdealcast(await freePort()) : undefined
console.log(`Fan-out: ${SUBSCRIBERS} subscribers on bench/#, 1 KiB QoS 0, window ${WINDOW} (subscribers report every ${SWEEP_MS} ms), ${SECONDS} s per run, ${ROUNDS} rounds A B A B, Firehose journal ${JOURNAL ? 'on' : 'off'}; ` +
  machineSummary({ mosquitto: true }))
try {
  const figures = { tcp: { f: [], m: [], i: [] }, ws: { f: [], m: [] }, stall: { f: [], m: [] } }
  const stalledDropped = { f: false, m: false }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [key, broker] of [['f', firehose], ['m', mosquitto]]) {
      if (ONLY.has('tcp')) figures.tcp[key].push((await fanOut(broker, 'tcp', `${key}-tcp-${round}`)).perSecond)
      if (ONLY.has('ws')) figures.ws[key].push((await fanOut(broker, 'ws', `${key}-ws-${round}`)).perSecond)
      if (ONLY.has('stall')) {
        const stalled = await fanOut(broker, 'tcp', `${key}-stall-${round}`, { stall: true })
        figures.stall[key].push(stalled.perSecond)
        stalledDropped[key] ||= stalled.stalledClosed
      }
    }
    if (floor !== undefined && ONLY.has('tcp')) figures.tcp.i.push((await fanOut(floor, 'tcp', `i-tcp-${round}`)).perSecond)
    console.log(`  round ${round + 1}: TCP ${fmt(figures.tcp.f.at(-1) ?? NaN)} vs ${fmt(figures.tcp.m.at(-1) ?? NaN)}, ` +
      `WebSocket ${fmt(figures.ws.f.at(-1) ?? NaN)} vs ${fmt(figures.ws.m.at(-1) ?? NaN)}, ` +
      `with a stalled subscriber ${fmt(figures.stall.f.at(-1) ?? NaN)} vs ${fmt(figures.stall.m.at(-1) ?? NaN)} deliveries/s`)
  }
  const none = { p50: NaN, p99: NaN, received: 0, sent: 0 }
  const capacity = ONLY.has('tcp') ? Math.min(median(figures.tcp.f), median(figures.tcp.m)) : 100000
  const rate = values.rate !== undefined ? Number(values.rate) : Math.max(10, Math.round(capacity / SUBSCRIBERS / 2))
  // one run per broker per round, the order swapped every round: whichever broker is measured
  // first in a pair does worse at rates near saturation (two identical Firehose builds gave
  // p50 12.5 and 1.6 ms at 200 msg/s in one run, first and second)
  const latencies = { f: [], m: [] }
  for (let round = 0; ONLY.has('latency') && round < ROUNDS; round++) {
    const order = round % 2 === 0 ? [['f', firehose], ['m', mosquitto]] : [['m', mosquitto], ['f', firehose]]
    for (const [key, broker] of order) latencies[key].push(await latency(broker, rate, `${key}-lat-${round}`))
    console.log(`  latency round ${round + 1} (${order.map(([key]) => key === 'f' ? 'Firehose' : 'Mosquitto').join(' first, ')} second): ` +
      `p50 / p99 ${fmt(latencies.f.at(-1).p50)} / ${fmt(latencies.f.at(-1).p99)} vs ${fmt(latencies.m.at(-1).p50)} / ${fmt(latencies.m.at(-1).p99)} ms`)
  }
  const combine = runs => runs.length === 0
    ? none
    : { p50: median(runs.map(r => r.p50)), p99: median(runs.map(r => r.p99)), received: runs.reduce((n, r) => n + r.received, 0), sent: runs.reduce((n, r) => n + r.sent, 0) }
  const lf = combine(latencies.f)
  const lm = combine(latencies.m)
  const noMemory = { marginal: NaN, average: NaN }
  const mf = ONLY.has('idle') ? await idleMemory(startOurs, 'tcp', 'f-idle') : noMemory
  const mm = ONLY.has('idle') ? await idleMemory(startMosquitto, 'tcp', 'm-idle') : noMemory
  const wf = ONLY.has('idle-ws') ? await idleMemory(startOurs, 'ws', 'f-idle-ws') : noMemory
  const wm = ONLY.has('idle-ws') ? await idleMemory(startMosquitto, 'ws', 'm-idle-ws') : noMemory

  console.log('\n| figure | Firehose | Mosquitto | ratio Firehose/Mosquitto |')
  console.log('|---|---|---|---|')
  row(`TCP fan-out, ${SUBSCRIBERS} subscribers, deliveries/s (median)`, median(figures.tcp.f), median(figures.tcp.m))
  row(`WebSocket fan-out, ${SUBSCRIBERS} subscribers, deliveries/s (median)`, median(figures.ws.f), median(figures.ws.m))
  const publisher = values['publisher-nagle'] ? ', publisher with Nagle' : ''
  row(`latency p50 at ${rate} msg/s × ${SUBSCRIBERS} subscribers${publisher} (median of rounds)`, lf.p50, lm.p50, ' ms', 'lower')
  row(`latency p99 at ${rate} msg/s × ${SUBSCRIBERS} subscribers${publisher} (median of rounds)`, lf.p99, lm.p99, ' ms', 'lower')
  row(`memory per idle TCP subscriber, ${Math.floor(IDLE / 2)} → ${IDLE} connections`, mf.marginal / 1024, mm.marginal / 1024, ' KiB', 'lower')
  row(`memory per idle TCP subscriber, 0 → ${IDLE} (fixed costs included)`, mf.average / 1024, mm.average / 1024, ' KiB', 'lower')
  row(`memory per idle WebSocket subscriber, ${Math.floor(IDLE / 2)} → ${IDLE} connections`, wf.marginal / 1024, wm.marginal / 1024, ' KiB', 'lower')
  row(`memory per idle WebSocket subscriber, 0 → ${IDLE} (fixed costs included)`, wf.average / 1024, wm.average / 1024, ' KiB', 'lower')
  row('TCP fan-out with one stalled subscriber (median)', median(figures.stall.f), median(figures.stall.m))
  if (ONLY.has('stall') && ONLY.has('tcp')) {
    console.log(`\nwith a stalled subscriber the others keep ${(100 * median(figures.stall.f) / median(figures.tcp.f)).toFixed(0)}% (Firehose) and ` +
      `${(100 * median(figures.stall.m) / median(figures.tcp.m)).toFixed(0)}% (Mosquitto) of their throughput; ` +
      `stalled subscriber disconnected: Firehose ${stalledDropped.f ? 'yes' : 'no'}, Mosquitto ${stalledDropped.m ? 'yes' : 'no'}`)
  }
  if (floor !== undefined && ONLY.has('tcp')) {
    console.log(`\nthe batching floor (bench/lib/idealcast.c, one write per read per subscriber, no routing): ${fmt(median(figures.tcp.i))} deliveries/s (rounds: ${figures.tcp.i.map(fmt).join(', ')}); ` +
      `Firehose / floor ${(median(figures.tcp.f) / median(figures.tcp.i)).toFixed(2)}, Mosquitto / floor ${(median(figures.tcp.m) / median(figures.tcp.i)).toFixed(2)}`)
  }
  if (ONLY.has('latency')) console.log(`latency: deliveries timed: Firehose ${lf.received}/${lf.sent}, Mosquitto ${lm.received}/${lm.sent}`)
  if (generatorSaturated) console.log('the load generator SATURATED a core in at least one fan-out run: those figures are its limit, not the broker\'s')
} finally {
  await firehose.stop()
  await mosquitto.stop()
  await floor?.stop()
}
