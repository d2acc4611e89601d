// Publish-to-delivery latency at a fixed rate: an mqtt.js publisher paced by the clock puts
// its send time (process.hrtime, CLOCK_MONOTONIC ns) in the first 8 bytes of each payload,
// read on arrival by lean subscribers (fan-out) or an mqtt.js probe (cluster).
import mqtt from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { openNativeSubscribers } from './native.mjs'
import { threadCpuSeconds } from './processes.mjs'

/**
 * Publishes `rate` × `seconds` QoS 0 messages of `payloadSize` bytes on `topic`, each stamped
 * with its send time, then waits a second for the last ones to arrive. Returns how many.
 */
export async function publishStamped (pub, topic, rate, seconds, payloadSize) {
  const total = Math.round(rate * seconds)
  const started = process.hrtime.bigint()
  for (let i = 0; i < total; i++) {
    const due = started + BigInt(Math.round((i * 1e9) / rate))
    // sleep, not spin: a spinning loop would take CPU from the broker being measured
    const wait = Number(due - process.hrtime.bigint()) / 1e6
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
    const payload = Buffer.alloc(payloadSize)
    payload.writeBigInt64BE(process.hrtime.bigint(), 0)
    pub.publish(topic, payload, { qos: 0 })
  }
  await new Promise(resolve => setTimeout(resolve, 1000))
  return total
}

/**
 * The latency loads' mqtt.js publisher (also crowd's and history's); its socket with TCP_NODELAY unless `nagle`. Nagle's
 * algorithm (mqtt.js leaves it on) holds each message while the last is unacknowledged, and
 * the broker's kernel may delay that acknowledgement by tens of ms.
 */
export async function connectPublisher ({ port, username, password, clientId, nagle }) {
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, username, password, clientId })
  if (!nagle) pub.stream.setNoDelay(true)
  return pub
}

/**
 * Fan-out latency: `count` lean subscribers on `bench/#` time every delivery of messages an
 * mqtt.js publisher sends at `rate` per second, each stamped with its send time; p50 and p99
 * over all deliveries to all subscribers, in ms (where one subscriber sits in a broker's
 * delivery order does not decide the figure). The publisher's socket has TCP_NODELAY, as a
 * publisher that cares for latency sets it, unless `nagle`: with Nagle's algorithm on (mqtt.js'
 * default) a message waits for the broker's kernel to acknowledge the last one, which it may
 * delay up to its delayed-ACK timeout once the broker is late to read once; at 200 msg/s such
 * a run stays late for good, whichever broker (bench/README.md, "Nagle at the publisher").
 * `warmUpSeconds` of the same load first, not counted; with the server's `pid`, also its CPU
 * seconds per message over the counted part (`cpuPerMessage`).
 */
export async function measureFanOutLatency ({ port, count, rate, seconds, username, password, label, topic = 'bench/latency', nagle = false, warmUpSeconds = 0, pid }) {
  const payloadSize = 1024
  const subs = await openStampedSubscribers({ port, count, idPrefix: label, topic, payloadSize })
  const pub = await connectPublisher({ port, username, password, clientId: `${label}-pub`, nagle })
  if (warmUpSeconds > 0) {
    await publishStamped(pub, topic, rate, warmUpSeconds, payloadSize)
    await subs.mark() // the warm-up's deliveries are not counted
  }
  const cpu = pid === undefined ? 0 : await threadCpuSeconds(pid)
  const total = await publishStamped(pub, topic, rate, seconds, payloadSize)
  const cpuPerMessage = pid === undefined ? undefined : (await threadCpuSeconds(pid) - cpu) / total
  await pub.endAsync()
  const { p50, p99, samples } = await subs.close()
  return { p50, p99, received: samples, sent: total * count, cpuPerMessage }
}

/**
 * `count` lean subscribers on `bench/#` that time every delivery of what `publishStamped` sends
 * on `topic` with `payloadSize`-byte payloads (every PUBLISH then has one size, the stamp at the
 * start of its payload).
 */
export async function openStampedSubscribers ({ port, count, idPrefix, topic, payloadSize, transport = 'tcp' }) {
  const packetSize = mqttPacket.generate({ cmd: 'publish', topic, payload: Buffer.alloc(payloadSize), qos: 0, retain: false }).length
  return await openNativeSubscribers({ port, transport, count, filter: 'bench/#', idPrefix, stamps: { packetSize, offset: packetSize - payloadSize } })
}

/** p50 and p99 in ms over `rate` × `seconds` messages on `topic`; the publisher with TCP_NODELAY unless `nagle` (connectPublisher). */
export async function measureLatency ({ publishPort, subscribePort, rate, seconds, username, password, topic = 'bench/latency', label = 'latency', nagle = false }) {
  const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${subscribePort}`, { reconnectPeriod: 0, clientId: `${label}-probe` })
  const pub = await connectPublisher({ port: publishPort, username, password, clientId: `${label}-pub`, nagle })
  const samples = []
  probe.on('message', (_topic, payload) => samples.push(Number(process.hrtime.bigint() - payload.readBigInt64BE(0)) / 1e6))
  await probe.subscribeAsync(topic, { qos: 0 })
  const total = await publishStamped(pub, topic, rate, seconds, 1024)
  await probe.endAsync()
  await pub.endAsync()
  samples.sort((a, b) => a - b)
  const at = q => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? NaN
  return { p50: at(0.5), p99: at(0.99), received: samples.length, sent: total }
}

export const median = xs => xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
export const fmt = n => Number.isNaN(n) ? 'n/a' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2)
