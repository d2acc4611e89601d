// A webhook receiver in a process of its own, for bench/subscriptions.mjs: answers every POST
// 204 and counts it; with stamps, reads the send time each event's payload carries (Pub/Sub
// envelope: base64 `data`, `"t":"<16-digit CLOCK_MONOTONIC ns>"`) and keeps the latency.
// Started with fork(); told { reset } or { report } over IPC, answers { count, latencies, cpu }.
import { createServer } from 'node:http'

const MARK = '"t":"'
let count = 0
let latencies = []
let stampsSince = 0
const cpuAt = process.cpuUsage()

const server = createServer((req, res) => {
  const chunks = []
  req.on('data', c => chunks.push(c))
  req.on('end', () => {
    count++
    if (stampsSince > 0) {
      const arrived = Number(process.hrtime.bigint())
      const body = JSON.parse(Buffer.concat(chunks).toString())
      const data = Buffer.from(body.message?.data ?? '', 'base64').toString()
      const at = data.indexOf(MARK)
      if (at >= 0) {
        const stamp = Number(data.slice(at + MARK.length, at + MARK.length + 16))
        if (stamp >= stampsSince) latencies.push((arrived - stamp) / 1e6)
      }
    }
    res.writeHead(204).end()
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }))
process.on('message', message => {
  if (message.reset !== undefined) {
    count = 0
    latencies = []
    stampsSince = message.reset.stampsSince ?? 0
    process.send({ reset: true })
  } else if (message.report) {
    const cpu = process.cpuUsage(cpuAt)
    process.send({ count, latencies, cpu: (cpu.user + cpu.system) / 1e6 })
  }
})
process.on('disconnect', () => process.exit(0))
