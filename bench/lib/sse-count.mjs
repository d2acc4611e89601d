// A Server-Sent Events reader in a process of its own (as curl -N would be, and away from the
// bench's heap): reads URL until N events have arrived, then prints one JSON line
// { events, bytes, seconds, firstByteMs, load } and exits.
//   node bench/lib/sse-count.mjs URL N
import { get } from 'node:http'

const [url, wanted] = [process.argv[2], Number(process.argv[3])]
const MARK = Buffer.from('\n\nid: ')
const cpu = process.cpuUsage()
const started = performance.now()
let events = 0
let bytes = 0
let firstByteMs
let tail = Buffer.alloc(0)

function count (chunk) {
  // a mark across the seam of two chunks, then those within this chunk (never both)
  const seam = Buffer.concat([tail, chunk.subarray(0, MARK.length - 1)])
  for (let i = seam.indexOf(MARK); i !== -1; i = seam.indexOf(MARK, i + 1)) events++
  for (let i = chunk.indexOf(MARK); i !== -1; i = chunk.indexOf(MARK, i + 1)) events++
  tail = chunk.length >= MARK.length - 1 ? chunk.subarray(-(MARK.length - 1)) : Buffer.concat([tail, chunk]).subarray(-(MARK.length - 1))
}

function report () {
  const seconds = (performance.now() - started) / 1000
  const used = process.cpuUsage(cpu)
  console.log(JSON.stringify({ events, bytes, seconds, firstByteMs, load: (used.user + used.system) / 1e6 / seconds }))
  process.exit(0)
}

const req = get(url, res => {
  if (res.statusCode !== 200) {
    console.error(`GET ${url}: ${res.statusCode}`)
    process.exit(1)
  }
  res.on('data', chunk => {
    firstByteMs ??= performance.now() - started
    count(chunk)
    bytes += chunk.length
    if (events >= wanted) report()
  })
  res.on('end', report)
})
req.on('error', err => {
  console.error(err.message)
  process.exit(1)
})
