// Publish-to-delivery latency at a fixed rate: an mqtt.js publisher paced by the clock and an
// mqtt.js probe subscriber reading the send time from the first 8 bytes of each 1 KiB payload.
import mqtt from 'mqtt'

/** p50 and p99 in ms over `rate` × `seconds` messages on `topic`. */
export async function measureLatency ({ publishPort, subscribePort, rate, seconds, username, password, topic = 'bench/latency', label = 'latency' }) {
  const probe = await mqtt.connectAsync(`mqtt://127.0.0.1:${subscribePort}`, { reconnectPeriod: 0, clientId: `${label}-probe` })
  const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${publishPort}`, { reconnectPeriod: 0, username, password, clientId: `${label}-pub` })
  const samples = []
  probe.on('message', (_topic, payload) => samples.push(Number(process.hrtime.bigint() - payload.readBigInt64BE(0)) / 1e6))
  await probe.subscribeAsync(topic, { qos: 0 })
  const total = Math.round(rate * seconds)
  const started = process.hrtime.bigint()
  for (let i = 0; i < total; i++) {
    const due = started + BigInt(Math.round((i * 1e9) / rate))
    while (process.hrtime.bigint() < due) await new Promise(resolve => setImmediate(resolve))
    const payload = Buffer.alloc(1024)
    payload.writeBigInt64BE(process.hrtime.bigint(), 0)
    pub.publish(topic, payload, { qos: 0 })
  }
  await new Promise(resolve => setTimeout(resolve, 1000))
  await probe.endAsync()
  await pub.endAsync()
  samples.sort((a, b) => a - b)
  const at = q => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? NaN
  return { p50: at(0.5), p99: at(0.99), received: samples.length, sent: total }
}

export const median = xs => xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
export const fmt = n => Number.isNaN(n) ? 'n/a' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2)
