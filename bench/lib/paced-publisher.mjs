// A publisher in a process of its own (so that it does not delay the measuring process's event
// loop): `rate` events/s for `seconds` on the given topics in turn, QoS 0, each a JSON object
// with its sequence number and send time (`t`: CLOCK_MONOTONIC ns, comparable across processes).
// Paced by the clock in 2 ms slices; TCP_NODELAY on its socket. Prints one JSON line when done: { sent, seconds }.
//   node paced-publisher.mjs PORT USER PASSWORD RATE SECONDS TOPIC [TOPIC ...]
import { connectPublisher } from './latency.mjs'

const [port, username, password, rate, seconds, ...topics] = process.argv.slice(2)
const pub = await connectPublisher({ port, username, password })
const total = Math.floor(Number(rate) * Number(seconds) / topics.length) * topics.length
const started = Date.now()
for (let sent = 0; sent < total;) {
  const due = Math.min(total, Math.floor((Date.now() - started) / 1000 * Number(rate)))
  for (; sent < due; sent++) pub.publish(topics[sent % topics.length], JSON.stringify({ seq: sent, t: String(process.hrtime.bigint()) }), { qos: 0 })
  await new Promise(resolve => setTimeout(resolve, 2))
}
const elapsed = (Date.now() - started) / 1000
await pub.endAsync()
console.log(JSON.stringify({ sent: total, seconds: elapsed }))
