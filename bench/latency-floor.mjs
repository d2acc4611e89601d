// Latency floor: what one message costs a broker at a low rate, against the least that code in
// Node and in C can do. Firehose, Mosquitto, bench/lib/nodecast.mjs (a copy loop on node:net)
// and bench/lib/idealcast.c (the same in C) each get the same stamped QoS 0 messages at `--rate`
// to `--subscribers` (bench/lib/latency.mjs), after 2 s of the same not counted; one after
// another, the order rotated every round. Reported: p50 / p99 publish-to-delivery and the
// server's CPU per message. Then `cold`: the same small piece of work (parsing and encoding one
// PUBLISH with mqtt-packet) timed in this process after idle gaps, which shows what an idle gap
// costs code on this machine.
//   npm run bench:latency-floor -- [--rate 20] [--subscribers 1] [--seconds 10] [--rounds 2]
//                                  [--journal on|off] [--only servers,cold]
import { parseArgs } from 'node:util'
import mqttPacket from 'mqtt-packet'
import { fmt, measureFanOutLatency, median } from './lib/latency.mjs'
import { startIdealcast, startNodecast } from './lib/native.mjs'
import { freePort, journalOption, machineSummary, startFirehose, startMosquitto } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '20' },
    subscribers: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    journal: { type: 'string', default: 'on' },
    only: { type: 'string', default: 'servers,cold' }
  }
})
const RATE = Number(values.rate)
const SUBSCRIBERS = Number(values.subscribers)
const SECONDS = Number(values.seconds)
const ROUNDS = Number(values.rounds)
const JOURNAL = journalOption(values.journal)
const ONLY = new Set(values.only.split(','))
for (const section of ONLY) if (!['servers', 'cold'].includes(section)) throw new Error(`--only: unknown section "${section}"`)
const USERS = { bench: 'bench-password' }
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const SERVERS = {
  firehose: async () => await startFirehose({ users: USERS, journal: JOURNAL }),
  mosquitto: async () => await startMosquitto(),
  nodecast: async () => await startNodecast(await freePort()),
  idealcast: async () => await startIdealcast(await freePort())
}

async function measure (name) {
  const server = await SERVERS[name]()
  try {
    // 2 s at the rate not counted (first calls, compilation); then the server does nothing but
    // deliver (connections, authentication, start-up and warm-up are behind)
    const r = await measureFanOutLatency({ port: server.port, count: SUBSCRIBERS, rate: RATE, seconds: SECONDS, username: 'bench', password: USERS.bench, label: `floor-${name}`, warmUpSeconds: 2, pid: server.pid })
    if (r.received !== r.sent) console.log(`  ${name}: ${r.received} of ${r.sent} deliveries timed`)
    return r
  } finally {
    await server.stop()
  }
}

async function servers () {
  const names = Object.keys(SERVERS)
  const results = Object.fromEntries(names.map(n => [n, []]))
  for (let round = 0; round < ROUNDS; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length])
    const line = []
    for (const name of order) {
      const r = await measure(name)
      results[name].push(r)
      line.push(`${name} ${fmt(r.p50)} / ${fmt(r.p99)} ms`)
    }
    console.log(`  round ${round + 1}: ${line.join(', ')}`)
  }
  const mosquittoP50 = median(results.mosquitto.map(r => r.p50))
  console.log(`\n| ${SUBSCRIBERS} subscriber(s), ${RATE} msg/s, 1 KiB QoS 0 (median of ${ROUNDS}) | p50 ms | p99 ms | CPU per message, µs | p50 / Mosquitto's |`)
  console.log('|---|---|---|---|---|')
  for (const name of names) {
    const p50 = median(results[name].map(r => r.p50))
    const p99 = median(results[name].map(r => r.p99))
    const cpu = median(results[name].map(r => r.cpuPerMessage)) * 1e6
    console.log(`| ${name} | ${fmt(p50)} | ${fmt(p99)} | ${fmt(cpu)} | ${(p50 / mosquittoP50).toFixed(2)} |`)
  }
}

/** Parsing and encoding one 1 KiB PUBLISH with mqtt-packet, timed after idle gaps; and with the same work also run every ms between. */
async function cold () {
  const packet = mqttPacket.generate({ cmd: 'publish', topic: 'bench/latency', payload: Buffer.alloc(1024), qos: 0, retain: false })
  const work = () => {
    const parser = mqttPacket.parser()
    let parsed
    parser.on('packet', p => { parsed = p })
    parser.parse(packet)
    return mqttPacket.generate(parsed).length
  }
  for (let i = 0; i < 20000; i++) work() // optimised before timing
  const time = async (gap, between) => {
    const keep = between === undefined ? undefined : setInterval(between, 1)
    const samples = []
    for (let i = 0; i < 100; i++) {
      await (gap === 0 ? new Promise(resolve => setImmediate(resolve)) : sleep(gap))
      const started = process.hrtime.bigint()
      work()
      samples.push(Number(process.hrtime.bigint() - started) / 1000)
    }
    clearInterval(keep)
    samples.sort((a, b) => a - b)
    return `p50 ${fmt(samples[50])} µs, p90 ${fmt(samples[90])} µs`
  }
  console.log('\n| parse + encode one PUBLISH (mqtt-packet, optimised), 100 times | time |')
  console.log('|---|---|')
  for (const gap of [0, 1, 5, 20, 50]) console.log(`| after ${gap} ms idle | ${await time(gap)} |`)
  console.log(`| after 50 ms, a timer doing nothing every ms between | ${await time(50, () => {})} |`)
  console.log(`| after 50 ms, the same work every ms between | ${await time(50, work)} |`)
}

console.log(`Latency floor: ${SUBSCRIBERS} subscriber(s) on bench/#, ${RATE} msg/s of 1 KiB QoS 0, ${SECONDS} s a run, ${ROUNDS} rounds, Firehose journal ${JOURNAL ? 'on' : 'off'}; ` +
  machineSummary({ mosquitto: true }))
if (ONLY.has('servers')) await servers()
if (ONLY.has('cold')) await cold()
