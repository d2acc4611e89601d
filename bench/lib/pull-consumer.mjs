// A pull consumer in a process of its own (as a service would be, and away from the bench's
// heap): pulls batches of MAX from subscription NAME until N events have arrived, parsing each
// batch as a consumer must, and acks each batch. node:http with kept-alive connections.
//   serial:  pull, ack, pull, ack... (each waits for the other)
//   overlap: a batch's ack goes out while the next batch is pulled (one ack in flight at most),
//            as a consumer that acks after processing, on a connection of its own, would do
// Prints one JSON line { events, seconds, load } and exits.
//   node bench/lib/pull-consumer.mjs BASE_URL AUTH NAME N MAX serial|overlap
import { Agent, request } from 'node:http'

const [base, auth, name, wanted, max, mode] = [process.argv[2], process.argv[3], process.argv[4], Number(process.argv[5]), Number(process.argv[6]), process.argv[7]]
const agent = new Agent({ keepAlive: true, maxSockets: 2 })

function post (path, body) {
  const bytes = Buffer.from(JSON.stringify(body))
  return new Promise((resolve, reject) => {
    const req = request(`${base}/v1/subscriptions/${name}/${path}`, { method: 'POST', agent, headers: { authorization: auth, 'content-type': 'application/json', 'content-length': String(bytes.length) } }, res => {
      const chunks = []
      res.on('data', chunk => chunks.push(chunk))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        if (res.statusCode !== 200) reject(new Error(`${path}: ${res.statusCode} ${text}`))
        else resolve(JSON.parse(text))
      })
    })
    req.on('error', reject)
    req.end(bytes)
  })
}

const cpu = process.cpuUsage()
const started = performance.now()
let events = 0
let acking = Promise.resolve()
while (events < wanted) {
  const batch = await post('pull', { max })
  if (batch.length === 0) throw new Error(`pulled ${events} of ${wanted}, then nothing`)
  events += batch.length
  const ack = post('ack', { ackIds: batch.map(m => m.ackId) })
  if (mode === 'serial') await ack
  else {
    await acking
    acking = ack
  }
}
await acking
const seconds = (performance.now() - started) / 1000
const used = process.cpuUsage(cpu)
console.log(JSON.stringify({ events, seconds, load: (used.user + used.system) / 1e6 / seconds }))
process.exit(0)
