// Live readers for bench/history.mjs, in a process of their own (so that the bench's publisher
// and its readers do not share one event loop, and the readers' CPU is theirs alone): COUNT
// readers of one kind, each a raw socket whose byte stream is searched for the events' send
// stamps — the same work per event for both kinds, so the comparison is the broker's.
//   sse  GET /v1/events?topic=bench/%23 (HTTP/1.0: the body is the event stream as sent, no chunk
//        framing, as `curl -N --http1.0` reads it)
//   ws   MQTT over WebSocket (raw upgrade, subprotocol mqtt), CONNECT and SUBSCRIBE bench/#
//
//   node bench/lib/stamp-readers.mjs sse|ws PORT COUNT
// Prints "ready" once every reader is reading. Then, on standard input:
//   since NS        count deliveries of events stamped at NS or later (CLOCK_MONOTONIC, as
//                   journal-bench.mjs `now`), and start measuring this process's CPU
//   load            print this process's CPU since `since`, as a share of one core, and go on
//   wait EXPECTED   wait until EXPECTED deliveries have been counted, or none has come for a
//                   second (30 s at most), then print one JSON line
//                   { p50, p99, max, received, bad, dropped } (ms) and exit
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import mqttPacket from 'mqtt-packet'
import { MARK, now, STAMP_DIGITS } from './journal-bench.mjs'

const [kind, port, count] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])]
if ((kind !== 'sse' && kind !== 'ws') || !(port > 0) || !(count > 0)) {
  console.error('usage: stamp-readers.mjs sse|ws PORT COUNT')
  process.exit(2)
}
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const samples = { since: Infinity, values: [], bad: 0, dropped: 0, closing: false }

/** A scanner for one reader's byte stream: each event's payload holds `"t":"<16 digits>"` once. */
function stampScanner () {
  let carry
  return chunk => {
    const arrived = now()
    const buf = carry === undefined ? chunk : Buffer.concat([carry, chunk])
    carry = undefined
    let at = 0
    for (;;) {
      const i = buf.indexOf(MARK, at)
      if (i === -1) {
        // a mark may begin in the last bytes
        const keep = Math.max(at, buf.length - (MARK.length - 1))
        if (keep < buf.length) carry = Buffer.from(buf.subarray(keep))
        return
      }
      const digits = i + MARK.length
      if (digits + STAMP_DIGITS > buf.length) {
        carry = Buffer.from(buf.subarray(i))
        return
      }
      const stamp = Number(buf.toString('latin1', digits, digits + STAMP_DIGITS))
      if (!Number.isFinite(stamp)) samples.bad++
      else if (stamp >= samples.since) samples.values.push((arrived - stamp) / 1e6) // not the warm-up's
      at = digits + STAMP_DIGITS
    }
  }
}

/** Opens one reader: the request, then its answer up to `isOpen(head)`; resolves with the socket, reading. */
function openReader (request, isOpen) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    let head = Buffer.alloc(0)
    socket.on('error', reject)
    socket.on('connect', () => request(socket))
    const opening = chunk => {
      head = Buffer.concat([head, chunk])
      let rest
      try {
        rest = isOpen(head, socket)
      } catch (err) {
        socket.destroy()
        reject(err)
        return
      }
      if (rest === undefined) return
      socket.off('data', opening)
      socket.off('error', reject)
      socket.on('error', () => {})
      socket.on('close', () => { if (!samples.closing) samples.dropped++ })
      const scan = stampScanner()
      socket.on('data', scan)
      if (rest.length > 0) scan(rest)
      resolve(socket)
    }
    socket.on('data', opening)
  })
}

/** Where the body begins once the response head is all there, if its status is `code`; throws on another. */
function bodyStart (head, code) {
  const end = head.indexOf('\r\n\r\n')
  if (end === -1) return undefined
  const status = head.toString('latin1', 0, head.indexOf('\r\n'))
  if (!new RegExp(`^HTTP/1\\.[01] ${code} `).test(status)) throw new Error(`refused: ${status}`)
  return end + 4
}

function openSse () {
  return openReader(
    socket => socket.write(`GET /v1/events?topic=bench/%23 HTTP/1.0\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`),
    head => {
      const body = bodyStart(head, 200) // the broker follows the journal once it has answered
      return body === undefined ? undefined : head.subarray(body)
    })
}

const SUBACK = Buffer.from([0x90, 0x03, 0x00, 0x01]) // message id 1, one filter granted
/** A client frame must be masked; a zero mask leaves the bytes as they are. */
function frame (packet) {
  const header = packet.length < 126 ? Buffer.from([0x82, 0x80 | packet.length]) : Buffer.from([0x82, 0x80 | 126, packet.length >> 8, packet.length & 0xff])
  return Buffer.concat([header, Buffer.alloc(4), packet])
}

function openWs (index) {
  let upgraded = false
  return openReader(
    socket => socket.write(`GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`),
    (head, socket) => {
      if (!upgraded) {
        if (bodyStart(head, 101) === undefined) return undefined
        upgraded = true
        socket.write(frame(Buffer.concat([
          mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `ws-${index}`, keepalive: 0 }),
          mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'bench/#', qos: 0 }] })
        ])))
      }
      const suback = head.indexOf(SUBACK)
      return suback === -1 ? undefined : head.subarray(suback + SUBACK.length)
    })
}

const sockets = []
const open = kind === 'sse' ? openSse : openWs
for (let start = 0; start < count; start += 100) { // a batch at a time: listen backlogs
  sockets.push(...await Promise.all(Array.from({ length: Math.min(100, count - start) }, (_, i) => open(start + i))))
}
console.log('ready')

let cpu
for await (const line of createInterface({ input: process.stdin })) {
  const [command, argument] = line.split(' ')
  if (command === 'since') {
    samples.since = Number(argument)
    cpu = { usage: process.cpuUsage(), at: performance.now() }
  } else if (command === 'load') {
    const used = process.cpuUsage(cpu.usage)
    console.log(String((used.user + used.system) / 1e3 / (performance.now() - cpu.at)))
  } else if (command === 'wait') {
    const expected = Number(argument)
    // until every delivery has arrived, or none has for a second (late ones count, however late)
    for (let last = -1, waited = 0; samples.values.length < expected && samples.values.length !== last && waited < 30; waited++) {
      last = samples.values.length
      await sleep(1000)
    }
    samples.closing = true
    for (const socket of sockets) socket.destroy()
    const sorted = Float64Array.from(samples.values).sort()
    const at = q => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null
    console.log(JSON.stringify({ p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? null, received: sorted.length, bad: samples.bad, dropped: samples.dropped }))
    process.exit(0)
  }
}
process.exit(0) // the bench went away: its readers go too
