// What bounding offline queues costs: QoS 1 messages published to persistent sessions that are
// all offline, with limits.maxQueuedMessages at 1,000 (each message past it drops the oldest of
// every session) against 0 (no limit), on each store — LevelDB, memory, a cluster node on Redis
// — and Mosquitto 2 with persistence and max_queued_messages 1000 beside them.
//
//   npm run bench:offline-queues -- [--sessions 10] [--messages 20000] [--rounds 2] [--only level,memory,cluster,mosquitto]
import { mkdtemp } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqttPacket from 'mqtt-packet'
import { median } from './lib/latency.mjs'
import { startFirehose, startMosquitto, startRedis } from './lib/processes.mjs'

const { values: args } = parseArgs({
  options: {
    sessions: { type: 'string', default: '10' },
    messages: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '2' },
    only: { type: 'string' }
  }
})
const SESSIONS = Number(args.sessions)
const MESSAGES = Number(args.messages)
const ROUNDS = Number(args.rounds)
const WINDOW = 64
const USERS = { infra: 'infra-secret' }
const only = args.only?.split(',')

/** A raw MQTT connection: CONNECT sent, resolved at CONNACK; `on(cmd, f)` for what follows. */
async function open (port, options) {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const parser = mqttPacket.parser()
  const handlers = new Map()
  parser.on('packet', packet => handlers.get(packet.cmd)?.(packet))
  socket.on('data', chunk => parser.parse(chunk))
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const connack = new Promise(resolve => handlers.set('connack', resolve))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, keepalive: 0, ...options }))
  if ((await connack).returnCode !== 0) throw new Error('refused')
  return {
    on: (cmd, f) => handlers.set(cmd, f),
    write: packet => socket.write(mqttPacket.generate(packet)),
    end: () => new Promise(resolve => { socket.once('close', resolve); socket.end(mqttPacket.generate({ cmd: 'disconnect' })) })
  }
}

/** Messages per second acknowledged (PUBACK) with every session offline. */
async function publishRate (port, credentials, round) {
  for (let i = 0; i < SESSIONS; i++) {
    const c = await open(port, { clientId: `offline-${round}-${i}`, clean: false })
    const suback = new Promise(resolve => c.on('suback', resolve))
    c.write({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `q${round}/#`, qos: 1 }] })
    await suback
    await c.end()
  }
  const pub = await open(port, { clientId: `offline-pub-${round}`, clean: true, ...credentials })
  let sent = 0
  let acked = 0
  const started = performance.now()
  await new Promise(resolve => {
    const send = () => {
      sent++
      pub.write({ cmd: 'publish', topic: `q${round}/x`, payload: Buffer.alloc(200, 'x'), qos: 1, messageId: (sent % 65535) + 1 })
    }
    pub.on('puback', () => {
      acked++
      if (acked === MESSAGES) resolve()
      else if (sent < MESSAGES) send()
    })
    for (let i = 0; i < WINDOW; i++) send()
  })
  const rate = MESSAGES / ((performance.now() - started) / 1000)
  await pub.end()
  return rate
}

const stores = {
  level: async () => ({ persistence: { dir: await mkdtemp(join(tmpdir(), 'firehose-bench-store-')) } }),
  memory: async () => ({ persistence: false }),
  cluster: async redis => ({ cluster: { redis: redis.url, node: 'bench' } })
}

const results = new Map()
const record = (label, rate) => { results.set(label, [...(results.get(label) ?? []), rate]) }
const redis = only === undefined || only.includes('cluster') ? await startRedis() : undefined
for (let round = 0; round < ROUNDS; round++) {
  for (const [store, extra] of Object.entries(stores)) {
    if (only !== undefined && !only.includes(store)) continue
    for (const max of [0, 1000]) {
      const broker = await startFirehose({ users: USERS, extra: { ...await extra(redis), limits: { maxConnections: 100000, maxConnectionsPerIp: 100000, maxQueuedMessages: max } } })
      record(`${store} ${max === 0 ? 'no limit' : 'limit 1000'}`, await publishRate(broker.port, { username: 'infra', password: USERS.infra }, round))
      await broker.stop()
    }
  }
  if (only === undefined || only.includes('mosquitto')) {
    const mosquitto = await startMosquitto({ persistence: true, maxQueuedMessages: 1000 })
    record('mosquitto limit 1000', await publishRate(mosquitto.port, {}, round))
    await mosquitto.stop()
  }
}
await redis?.stop()

console.log(`\noffline queues: ${SESSIONS} offline persistent sessions, ${MESSAGES} QoS 1 messages of 200 bytes, ${WINDOW} in flight; median of ${ROUNDS} rounds\n`)
console.log('| broker, store | msg/s acknowledged | limit / no limit |')
console.log('|---|---|---|')
for (const [label, rates] of results) {
  const rate = median(rates)
  const base = label.endsWith('limit 1000') && !label.startsWith('mosquitto') ? median(results.get(label.replace('limit 1000', 'no limit')) ?? []) : undefined
  console.log(`| ${label} | ${Math.round(rate)} | ${base === undefined ? '' : (rate / base).toFixed(2)} |`)
}
