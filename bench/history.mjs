// History: the journal's replay against a bare iteration of the same LevelDB, fan-out with the
// journal on and off, a broker's memory with a full and an empty journal, and live latency over
// Server-Sent Events against MQTT over WebSocket. Side by side, same machine, one run.
//   npm run bench:history -- [--events 200000] [--seconds 5] [--rounds 2] [--subscribers 200]
//                            [--readers 1000] [--only replay,fanout,memory,sse-latency]
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs, promisify } from 'node:util'
import { Redis } from 'ioredis'
import { follow, LevelJournal, RedisJournal } from '../packages/journal/dist/index.js'
import { cpuSeconds, flood, openPublisher } from './lib/lean-client.mjs'
import { bareIteration, eventPayload, fillJournal, now } from './lib/journal-bench.mjs'
import { connectPublisher, fmt, median } from './lib/latency.mjs'
import { openNativeSubscribers } from './lib/native.mjs'
import { machineSummary, processCpuSeconds, startFirehose, startRedis } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    subscribers: { type: 'string', default: '200' },
    readers: { type: 'string', default: '1000' },
    only: { type: 'string', default: 'replay,replay-redis,fanout,memory,sse-latency' }
  }
})
const EVENTS = Number(values.events)
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const SUBSCRIBERS = Number(values.subscribers)
const READERS = Number(values.readers)
const ONLY = new Set(values.only.split(','))
for (const section of ONLY) {
  if (!['replay', 'replay-redis', 'fanout', 'memory', 'sse-latency'].includes(section)) throw new Error(`--only: unknown section "${section}"`)
}
const RATE = 100 // messages/s of the live latency load
const USERS = { bench: 'bench-password' }
// nothing is trimmed during a run, whatever its size
const RETENTION = { maxAge: '3650d', maxBytes: '100GiB' }
const LIMITS = { maxConnections: 100000, maxConnectionsPerIp: 100000, maxStreamsPerIp: Math.max(2000, READERS + 100) }
const run = promisify(execFile)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const MiB = 1024 * 1024
const saturated = []

const root = await mkdtemp(join(tmpdir(), 'firehose-bench-history-'))
const journalConfig = dir => ({ dir, topics: ['#'], retention: RETENTION })
const startBroker = async journal => await startFirehose({ users: USERS, extra: { journal, limits: LIMITS } })
const httpJson = async (broker, path) => await (await fetch(`http://127.0.0.1:${broker.wsPort}${path}`)).json()

/** Resident memory of a process (Linux): all of it, its anonymous part (heap) and file pages (LevelDB maps its tables). */
async function memoryOf (pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = field => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024
  return { rss: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') }
}

// ---- 1. replay, 3. memory -------------------------------------------------------------------

/** The broker's read path without HTTP: follow() from offset 1 (journal.read pages of 120, decodeEntry). */
async function followInProcess (dir) {
  const journal = await LevelJournal.open(dir, { retention: { maxAgeMs: 3650 * 86400_000, maxBytes: 100 * 1024 ** 3 } })
  const cpu = process.cpuUsage()
  const started = performance.now()
  let events = 0
  let bytes = 0
  let finish
  const finished = new Promise(resolve => { finish = resolve })
  const following = follow(journal, {
    from: 1,
    accept: () => true,
    deliver: entry => {
      bytes += entry.payload.length
      if (++events === EVENTS) finish()
    }
  })
  await Promise.race([finished, following.done])
  const seconds = (performance.now() - started) / 1000
  const load = cpuSeconds(cpu) / seconds
  following.stop()
  await journal.close()
  return { events, bytes, seconds, load }
}

/** Events/s delivered over SSE from offset 1 until all `EVENTS` have arrived, to a reader process of its own (bench/lib/sse-count.mjs). */
async function sseReplay (broker) {
  const brokerCpu = await processCpuSeconds(broker.pid)
  const started = performance.now()
  const url = `http://127.0.0.1:${broker.wsPort}/v1/events?topic=%23&since=1`
  const { stdout } = await run(process.execPath, [new URL('./lib/sse-count.mjs', import.meta.url).pathname, url, String(EVENTS)], { maxBuffer: 1 << 20 })
  const brokerLoad = (await processCpuSeconds(broker.pid) - brokerCpu) / ((performance.now() - started) / 1000)
  return { ...JSON.parse(stdout), brokerLoad }
}

async function replayAndMemory () {
  const full = join(root, 'journal-full')
  console.log(`filling a journal with ${fmt(EVENTS)} events of 1 KiB...`)
  const fill = await fillJournal(full, EVENTS, 'bench/history')
  console.log(`  ${fmt(fill.perSecond)} appends/s; ${fmt(fill.bytes / MiB)} MiB of entries, ${fmt(fill.onDisk / MiB)} MiB on disk`)
  let bare, inProcess, sse
  if (ONLY.has('replay')) {
    // the best of two passes: the first open after the fill also turns LevelDB's log into a table
    const passes = [await bareIteration(full), await bareIteration(full)]
    bare = passes.reduce((a, b) => a.seconds <= b.seconds ? a : b)
    console.log(`  bare iteration: ${fmt(bare.events)} events in ${passes.map(p => p.seconds.toFixed(2)).join(' s, then ')} s`)
    inProcess = await followInProcess(full)
    console.log(`  follow() in this process: ${fmt(inProcess.events)} events in ${inProcess.seconds.toFixed(2)} s`)
  }
  const brokers = []
  try {
    const fullBroker = await startBroker(journalConfig(full))
    brokers.push(fullBroker)
    const bounds = await httpJson(fullBroker, '/v1/journal')
    if (bounds.first !== 1 || bounds.last !== EVENTS) console.log(`  UNEXPECTED: the broker holds offsets ${bounds.first} to ${bounds.last}, not 1 to ${EVENTS}`)
    let memory
    if (ONLY.has('memory')) {
      const emptyBroker = await startBroker(journalConfig(join(root, 'journal-empty')))
      brokers.push(emptyBroker)
      // both idle side by side for 5 s: what each holds, and what each spends doing nothing
      await sleep(1000)
      const cpuBefore = await Promise.all(brokers.map(b => processCpuSeconds(b.pid)))
      await sleep(5000)
      const cpuAfter = await Promise.all(brokers.map(b => processCpuSeconds(b.pid)))
      const [fullMemory, emptyMemory] = await Promise.all(brokers.map(b => memoryOf(b.pid)))
      memory = { full: fullMemory, empty: emptyMemory, fullCpu: (cpuAfter[0] - cpuBefore[0]) / 5, emptyCpu: (cpuAfter[1] - cpuBefore[1]) / 5 }
    }
    if (ONLY.has('replay')) {
      // the best of two, as the bare iteration: the first also warms the broker's code
      const passes = [await sseReplay(fullBroker), await sseReplay(fullBroker)]
      sse = passes.reduce((a, b) => a.events / a.seconds >= b.events / b.seconds ? a : b)
      console.log(`  SSE: ${fmt(sse.events)} events in ${passes.map(p => p.seconds.toFixed(2)).join(' s, then ')} s`)
      if (sse.load > 0.9) saturated.push('the SSE replay\'s reader')
    }
    if (memory !== undefined && sse !== undefined) {
      await sleep(3000)
      memory.afterReplay = await memoryOf(fullBroker.pid)
    }

    if (sse !== undefined) {
      const row = (name, r) => console.log(`| ${name} | ${fmt(r.events / r.seconds)} | ${fmt(r.bytes / MiB / r.seconds)} | ${(100 * r.load).toFixed(0)}% | ${((r.events / r.seconds) / (bare.events / bare.seconds)).toFixed(2)} |`)
      console.log(`\n| replay of ${fmt(EVENTS)} events of 1 KiB | events/s | MiB/s read | CPU (bench process or SSE reader / broker) | ratio to bare |`)
      console.log('|---|---|---|---|---|')
      row('bare LevelDB iteration (classic-level, nextv 1000 with 4 MiB a trip, values only; best of 2)', bare)
      row('follow() in process (journal.read pages of 120, decodeEntry; no HTTP)', inProcess)
      console.log(`| SSE from the broker (node:http, topic=#, since=1; best of 2) | ${fmt(sse.events / sse.seconds)} | ${fmt(sse.bytes / MiB / sse.seconds)} | ${(100 * sse.load).toFixed(0)}% / ${(100 * sse.brokerLoad).toFixed(0)}% | ` +
        `**${((sse.events / sse.seconds) / (bare.events / bare.seconds)).toFixed(2)}** (target ≥ 0.5) |`)
      console.log(`\nfill: ${fmt(fill.perSecond)} appends/s (1000 in flight); SSE first byte after ${sse.firstByteMs.toFixed(0)} ms; ` +
        `SSE bytes per event ${fmt(sse.bytes / sse.events)} (the 1 KiB payload re-serialised in its envelope)`)
    }
    if (memory !== undefined) {
      const m = bytes => `${fmt(bytes / MiB)} MiB`
      const row = (name, r, cpu) => console.log(`| ${name} | ${m(r.rss)} | ${m(r.anon)} | ${m(r.file)} | ${cpu === undefined ? '' : `${(100 * cpu).toFixed(1)}%`} |`)
      console.log('\n| broker memory, idle 5 s | RSS | anonymous (heap) | file pages | CPU while idle |')
      console.log('|---|---|---|---|---|')
      row('empty journal', memory.empty, memory.emptyCpu)
      row(`journal of ${fmt(EVENTS)} events (${m(fill.onDisk)} on disk)`, memory.full, memory.fullCpu)
      if (memory.afterReplay !== undefined) row('the same, 3 s after the SSE replay of all of it', memory.afterReplay)
      const d = key => m(memory.full[key] - memory.empty[key])
      console.log(`| difference, full − empty (idle) | ${d('rss')} | ${d('anon')} | ${d('file')} | |`)
    }
  } finally {
    for (const broker of brokers) await broker.stop()
  }
}

// ---- 2. fan-out, journal on and off ---------------------------------------------------------

/**
 * The cluster's journal: `EVENTS` events appended through RedisJournal into Debian's
 * redis-server, then read back bare (XRANGE pages of 1000, values only, in this process) and
 * over SSE from a cluster node on that Redis.
 */
const pct = load => `${(100 * load).toFixed(0)}%`

async function replayRedis () {
  const redis = await startRedis()
  let broker
  try {
    const db = new Redis(redis.url)
    const tail = new Redis(redis.url)
    const journal = await RedisJournal.open({ db, tail, retention: { maxAgeMs: 3650 * 86400_000, maxBytes: 100 * 1024 ** 3 } })
    console.log(`filling the Redis journal with ${fmt(EVENTS)} events of 1 KiB...`)
    const filling = performance.now()
    for (let done = 0; done < EVENTS; done += 1000) {
      await Promise.all(Array.from({ length: Math.min(1000, EVENTS - done) }, (_, i) =>
        journal.append({ topic: 'bench/history', payload: eventPayload(done + i), qos: 0, retain: false, json: true })))
    }
    console.log(`  ${fmt(EVENTS / ((performance.now() - filling) / 1000))} appends/s`)
    await journal.close()
    // bare: XRANGE pages, values only
    const cpu = process.cpuUsage()
    const started = performance.now()
    let events = 0
    for (let from = '-'; ;) {
      const page = await db.xrangeBuffer('firehose:journal', from, '+', 'COUNT', 1000)
      if (page.length === 0) break
      events += page.length
      const last = page[page.length - 1][0].toString()
      from = `(${last}`
    }
    const bareSeconds = (performance.now() - started) / 1000
    const bare = { events, seconds: bareSeconds, load: cpuSeconds(cpu) / bareSeconds }
    db.disconnect()
    broker = await startFirehose({ users: USERS, extra: { cluster: { redis: redis.url, node: 'bench' }, journal: { topics: ['#'], retention: RETENTION }, limits: LIMITS } })
    const sse = await sseReplay(broker)
    console.log(`\n| replay of ${fmt(EVENTS)} events of 1 KiB from Redis Streams | events/s | CPU (bench process or SSE reader / broker) | ratio to bare |`)
    console.log('|---|---|---|---|')
    console.log(`| bare XRANGE pages of 1000 (ioredis, values only) | ${fmt(bare.events / bare.seconds)} | ${pct(bare.load)} | 1.00 |`)
    console.log(`| SSE from a cluster node (node:http, topic=#, since=1) | ${fmt(sse.events / sse.seconds)} | ${pct(sse.load)} / ${pct(sse.brokerLoad)} | **${((sse.events / sse.seconds) / (bare.events / bare.seconds)).toFixed(2)}** |`)
  } finally {
    await broker?.stop()
    await redis.stop()
  }
}

const FANOUT_PAYLOAD = eventPayload(0)

/** Deliveries/s to `SUBSCRIBERS` lean subscribers on `bench/#` (as bench/fanout.mjs measures them). */
async function fanOut (broker, transport, label) {
  const port = transport === 'ws' ? broker.wsPort : broker.port
  const subs = await openNativeSubscribers({ port, count: SUBSCRIBERS, filter: 'bench/#', idPrefix: label, transport })
  const publisher = await openPublisher({ port: broker.port, clientId: `${label}-pub`, username: 'bench', password: USERS.bench })
  const packet = publisher.publishPacket('bench/fanout', FANOUT_PAYLOAD)
  let published = await flood(publisher, packet, 1, subs) // warm-up
  await sleep(300)
  const before = subs.bytes()
  const cpu = process.cpuUsage()
  const subsCpu = await processCpuSeconds(subs.pid)
  const brokerCpu = await processCpuSeconds(broker.pid)
  const started = Date.now()
  published += await flood(publisher, packet, SECONDS, subs)
  const elapsed = (Date.now() - started) / 1000
  const perSecond = (subs.bytes() - before) / packet.length / elapsed
  const generator = Math.max(cpuSeconds(cpu), await processCpuSeconds(subs.pid) - subsCpu) / elapsed
  const brokerLoad = (await processCpuSeconds(broker.pid) - brokerCpu) / elapsed
  if (generator > 0.9) saturated.push(`the fan-out generator (${label})`)
  await sleep(500) // what the publisher wrote is read (and journaled) before it goes
  publisher.close()
  await subs.close()
  return { perSecond, published, brokerLoad }
}

async function fanOutOnOff () {
  const brokers = []
  try {
    // started inside the try: a broker that failed to start must not leave the other running
    // (it holds this process's stderr, so whatever reads it would wait for ever)
    const off = await startBroker(false)
    brokers.push(off)
    const on = await startBroker(journalConfig(join(root, 'journal-fanout')))
    brokers.push(on)
    const figures = { tcp: { off: [], on: [] }, ws: { off: [], on: [] } }
    const cpu = { tcp: { off: [], on: [] }, ws: { off: [], on: [] } }
    let publishedOn = 0
    for (let round = 0; round < ROUNDS; round++) {
      for (const [key, broker] of [['off', off], ['on', on]]) {
        for (const transport of ['tcp', 'ws']) {
          const run = await fanOut(broker, transport, `${key}-${transport}-${round}`)
          figures[transport][key].push(run.perSecond)
          cpu[transport][key].push(run.brokerLoad)
          if (key === 'on') publishedOn += run.published
        }
      }
      console.log(`  round ${round + 1}: TCP off ${fmt(figures.tcp.off.at(-1))} on ${fmt(figures.tcp.on.at(-1))}, ` +
        `WebSocket off ${fmt(figures.ws.off.at(-1))} on ${fmt(figures.ws.on.at(-1))} deliveries/s`)
    }
    const journal = await httpJson(on, '/v1/journal')
    console.log(`\n| fan-out, ${SUBSCRIBERS} subscribers, 1 KiB QoS 0 (median of ${ROUNDS}) | journal off | journal on | ratio on/off |`)
    console.log('|---|---|---|---|')
    for (const [transport, name] of [['tcp', 'TCP'], ['ws', 'WebSocket']]) {
      const o = median(figures[transport].off)
      const n = median(figures[transport].on)
      const load = key => `${(100 * median(cpu[transport][key])).toFixed(0)}%`
      console.log(`| ${name} deliveries/s | ${fmt(o)} | ${fmt(n)} | **${(n / o).toFixed(2)}** (target ≥ 0.9) |`)
      console.log(`| ${name} broker CPU | ${load('off')} | ${load('on')} | |`)
    }
    console.log(`\njournal on: ${fmt(journal.appends)} appends for ${fmt(publishedOn)} messages published (${fmt(journal.bytes / MiB)} MiB)`)
  } finally {
    for (const broker of brokers) await broker.stop()
  }
}

// ---- 4. live latency: SSE readers against MQTT-over-WebSocket subscribers --------------------

/**
 * `READERS` live readers of one kind (`sse` or `ws`) in a process of their own
 * (bench/lib/stamp-readers.mjs); resolves once every one is reading.
 */
async function openStampReaders (broker, kind) {
  const child = spawn(process.execPath, [new URL('./lib/stamp-readers.mjs', import.meta.url).pathname, kind, String(broker.wsPort), String(READERS)],
    { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async () => {
    const { value, done } = await lines.next()
    if (done) throw new Error(`the ${kind} readers ended (exit ${child.exitCode})`)
    return value
  }
  const ready = await next()
  if (ready !== 'ready') throw new Error(`the ${kind} readers: ${ready}`)
  return {
    since: stamp => child.stdin.write(`since ${stamp}\n`),
    load: async () => { child.stdin.write('load\n'); return Number(await next()) },
    result: async expected => { child.stdin.write(`wait ${expected}\n`); return JSON.parse(await next()) },
    close: () => child.kill()
  }
}

/** Publishes stamped events at `RATE`/s for `seconds` from mqtt.js, paced by the clock (sleeping, not spinning). */
async function publishStamped (pub, seconds, firstSeq) {
  const total = Math.round(RATE * seconds)
  const started = now()
  for (let i = 0; i < total; i++) {
    const wait = (started + (i * 1e9) / RATE - now()) / 1e6
    if (wait > 0) await sleep(wait)
    pub.publish('bench/latency', eventPayload(firstSeq + i, now()), { qos: 0 })
  }
  return total
}

/** p50/p99 publish-to-receive over every delivery to every reader of one kind (`sse` or `ws`). */
async function liveLatency (broker, kind) {
  const readers = await openStampReaders(broker, kind)
  const pub = await connectPublisher({ port: broker.port, username: 'bench', password: USERS.bench, clientId: `${kind}-pub` })
  try {
    await publishStamped(pub, 1, 0) // warm-up
    await sleep(1000)
    const cpu = process.cpuUsage()
    const brokerCpu = await processCpuSeconds(broker.pid)
    const started = performance.now()
    readers.since(now())
    const sent = await publishStamped(pub, SECONDS, RATE)
    const elapsed = (performance.now() - started) / 1000
    const load = cpuSeconds(cpu) / elapsed
    const readersLoad = await readers.load()
    const brokerLoad = (await processCpuSeconds(broker.pid) - brokerCpu) / elapsed
    const expected = sent * READERS
    const result = await readers.result(expected)
    if (load > 0.9) saturated.push(`the ${kind} run's publisher`)
    if (readersLoad > 0.9) saturated.push(`the ${kind} readers`)
    const ms = value => value ?? NaN
    return { ...result, p50: ms(result.p50), p99: ms(result.p99), max: ms(result.max), expected, load, readersLoad, brokerLoad }
  } finally {
    await pub.endAsync()
    readers.close()
  }
}

async function sseLatency () {
  const broker = await startBroker(journalConfig(join(root, 'journal-live')))
  try {
    const sse = await liveLatency(broker, 'sse')
    console.log(`  SSE: p50 ${fmt(sse.p50)} ms, p99 ${fmt(sse.p99)} ms`)
    await sleep(1000)
    const ws = await liveLatency(broker, 'ws')
    console.log(`  MQTT over WebSocket: p50 ${fmt(ws.p50)} ms, p99 ${fmt(ws.p99)} ms`)
    console.log(`\n| live, ${RATE} msg/s of 1 KiB × ${fmt(READERS)} readers, ${SECONDS} s | p50 ms | p99 ms | max ms | received | CPU (readers / publisher / broker) |`)
    console.log('|---|---|---|---|---|---|')
    for (const [name, r] of [['SSE, GET /v1/events?topic=bench/%23', sse], ['MQTT over WebSocket, bench/#', ws]]) {
      console.log(`| ${name} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${r.received}/${r.expected}${r.bad > 0 ? ` (${r.bad} unreadable)` : ''}${r.dropped > 0 ? `, ${r.dropped} readers disconnected` : ''} | ${(100 * r.readersLoad).toFixed(0)}% / ${(100 * r.load).toFixed(0)}% / ${(100 * r.brokerLoad).toFixed(0)}% |`)
    }
    console.log(`| ratio SSE / MQTT over WebSocket | ${(sse.p50 / ws.p50).toFixed(2)} | ${(sse.p99 / ws.p99).toFixed(2)} | | | |`)
  } finally {
    await broker.stop()
  }
}

console.log(`History: ${fmt(EVENTS)} events, ${SECONDS} s per run, ${ROUNDS} rounds, ${SUBSCRIBERS} subscribers, ${fmt(READERS)} readers; ` +
  machineSummary())
try {
  if (ONLY.has('replay') || ONLY.has('memory')) {
    console.log('\n## replay and memory')
    await replayAndMemory()
  }
  if (ONLY.has('replay-redis')) {
    console.log('\n## replay from Redis Streams (a cluster node)')
    await replayRedis()
  }
  if (ONLY.has('fanout')) {
    console.log('\n## fan-out, journal off and on')
    await fanOutOnOff()
  }
  if (ONLY.has('sse-latency')) {
    console.log('\n## live latency, SSE and MQTT over WebSocket')
    await sseLatency()
  }
  if (saturated.length > 0) console.log(`\nSATURATED a core: ${saturated.join(', ')}: those figures are its limit, not the broker's`)
} finally {
  await rm(root, { recursive: true, force: true })
}
