// Cluster benchmark: fan-out with the subscribers on one node against the same load spread
// over two nodes on Redis, and the publish-to-delivery latency a second node adds.
//   npm run bench:cluster [-- --subscribers 200 --seconds 10 --rate 1000]
// Runs on loopback; on a small machine the nodes, Redis and the load generator share the
// cores, so the figures are indicative of the overhead, not of what separate hosts would do.
import { cpus } from 'node:os'
import { parseArgs } from 'node:util'
import { cpuSeconds, flood, openPublisher, openSubscribers } from './lib/lean-client.mjs'
import { fmt, measureLatency, median } from './lib/latency.mjs'
import { machineSummary, startFirehose, startRedis } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    rounds: { type: 'string', default: '2' }
  }
})
const SUBSCRIBERS = Number(values.subscribers)
const SECONDS = Number(values.seconds)
const RATE = Number(values.rate)
const ROUNDS = Number(values.rounds)
const USERS = { bench: 'bench-password' }
const PAYLOAD = Buffer.alloc(1024, 'x')

/** Delivered messages per second with `SUBSCRIBERS` spread over `ports`, publishing to ports[0]. */
async function fanOut (ports, label) {
  const groups = await Promise.all(ports.map(async (port, i) => await openSubscribers({
    port, count: Math.floor(SUBSCRIBERS / ports.length) + (i < SUBSCRIBERS % ports.length ? 1 : 0), filter: 'bench/#', idPrefix: `${label}-${i}`
  })))
  const all = { sockets: groups.flatMap(g => g.sockets), bytes: () => groups.reduce((s, g) => s + g.bytes(), 0) }
  const publisher = await openPublisher({ port: ports[0], clientId: `${label}-pub`, username: 'bench', password: USERS.bench })
  const packet = publisher.publishPacket('bench/fanout', PAYLOAD)
  await flood(publisher, packet, 1, all) // warm up
  await new Promise(resolve => setTimeout(resolve, 500))
  const before = all.bytes()
  const cpu = process.cpuUsage()
  const started = Date.now()
  await flood(publisher, packet, SECONDS, all)
  const elapsed = (Date.now() - started) / 1000
  const delivered = (all.bytes() - before) / packet.length
  const generatorCpu = cpuSeconds(cpu) / elapsed
  publisher.close()
  groups.forEach(g => g.close())
  return { perSecond: delivered / elapsed, generatorCpu }
}

const latency = async (publishPort, subscribePort) => await measureLatency({ publishPort, subscribePort, rate: RATE, seconds: SECONDS, username: 'bench', password: USERS.bench, label: `lat-${publishPort}-${subscribePort}` })

console.log(`Firehose cluster benchmark: ${SUBSCRIBERS} subscribers on bench/#, 1 KiB QoS 0, ${SECONDS} s per run, ${ROUNDS} rounds; ${machineSummary()}`)
const redis = await startRedis()
const single = await startFirehose({ users: USERS })
const nodeA = await startFirehose({ users: USERS, extra: { cluster: { redis: redis.url, node: 'bench-a' } } })
const nodeB = await startFirehose({ users: USERS, extra: { cluster: { redis: redis.url, node: 'bench-b' } } })
try {
  const one = []
  const two = []
  const cpu = []
  for (let round = 0; round < ROUNDS; round++) { // alternate A B A B
    const a = await fanOut([single.port], `single-${round}`)
    const b = await fanOut([nodeA.port, nodeB.port], `cluster-${round}`)
    one.push(a.perSecond)
    two.push(b.perSecond)
    cpu.push(a.generatorCpu, b.generatorCpu)
    console.log(`  round ${round + 1}: one node ${fmt(a.perSecond)}/s, two nodes ${fmt(b.perSecond)}/s`)
  }
  const same = await latency(nodeA.port, nodeA.port)
  const across = await latency(nodeA.port, nodeB.port)
  const alone = await latency(single.port, single.port)

  console.log('\n| figure | one node (no Redis) | two nodes on Redis | ratio two/one |')
  console.log('|---|---|---|---|')
  console.log(`| fan-out deliveries/s (median) | ${fmt(median(one))} | ${fmt(median(two))} | ${(median(two) / median(one)).toFixed(2)} |`)
  console.log(`\n| latency at ${RATE}/s | p50 ms | p99 ms | received |`)
  console.log('|---|---|---|---|')
  for (const [name, r] of [['one node, no Redis', alone], ['cluster, same node', same], ['cluster, across nodes', across]]) {
    console.log(`| ${name} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${r.received}/${r.sent} |`)
  }
  const maxCpu = Math.max(...cpu)
  console.log(`\nload generator: ${(maxCpu * 100).toFixed(0)}% of one core at most` +
    (maxCpu > 0.9 ? ' — it SATURATED a core: the fan-out figures are its limit, not the brokers\'' : ''))
  if (cpus().length < 4) console.log(`only ${cpus().length} cores: brokers, Redis and the generator share them; the figures are indicative`)
} finally {
  await Promise.all([single.stop(), nodeA.stop(), nodeB.stop()])
  await redis.stop()
}
