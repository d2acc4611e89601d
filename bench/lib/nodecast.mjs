// nodecast: bench/lib/idealcast.c's copy loop in Node (node:net), the least a broker written in
// Node does per message: it answers CONNECT with CONNACK, SUBSCRIBE with SUBACK (every subscriber
// gets everything), PINGREQ with PINGRESP, and writes the PUBLISH packets of each read from a
// publisher to every subscriber, one write each. No routing, no authorisation, no parser beyond
// packet boundaries. For bench/latency-floor.mjs.
//   node nodecast.mjs PORT      prints "listening" once it accepts connections
import { createServer } from 'node:net'

const CONNACK = Buffer.from([0x20, 2, 0, 0])
const PINGRESP = Buffer.from([0xd0, 0])
const subscribers = new Set()

/** The end of the packet starting at `at` in `buf`, or -1 when it is not all there yet. */
function packetEnd (buf, at) {
  let length = 0
  for (let i = at + 1, shift = 1; i < buf.length && i < at + 5; i++, shift *= 128) {
    length += (buf[i] & 127) * shift
    if ((buf[i] & 128) === 0) return i + 1 + length <= buf.length ? i + 1 + length : -1
  }
  return -1
}

const server = createServer(socket => {
  socket.setNoDelay(true)
  let pending = Buffer.alloc(0)
  socket.on('data', data => {
    const buf = pending.length === 0 ? data : Buffer.concat([pending, data])
    const publishes = []
    let at = 0
    for (let end; at < buf.length && (end = packetEnd(buf, at)) !== -1; at = end) {
      switch (buf[at] >> 4) {
        case 1: socket.write(CONNACK); break
        case 8: { // SUBACK with the SUBSCRIBE's packet id (the first two bytes after the length), granted QoS 0
          let body = at + 1
          while (buf[body] & 128) body++
          socket.write(Buffer.from([0x90, 3, buf[body + 1], buf[body + 2], 0]))
          subscribers.add(socket)
          break
        }
        case 12: socket.write(PINGRESP); break
        case 3: publishes.push(buf.subarray(at, end)); break
        case 14: socket.end(); break
      }
    }
    pending = buf.subarray(at)
    if (publishes.length === 0) return
    const out = publishes.length === 1 ? publishes[0] : Buffer.concat(publishes)
    for (const subscriber of subscribers) if (subscriber !== socket) subscriber.write(out)
  })
  socket.on('close', () => subscribers.delete(socket))
  socket.on('error', () => {})
})
server.listen(Number(process.argv[2]), '127.0.0.1', () => console.log('listening'))
