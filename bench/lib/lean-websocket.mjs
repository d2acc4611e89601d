// Lean MQTT-over-WebSocket subscribers: a raw HTTP upgrade, then the server's (unmasked)
// frames are parsed only as far as their headers, summing payload bytes, so deliveries can be
// counted as for TCP (payload bytes / PUBLISH size) whether a broker sends one frame per MQTT
// packet or several.
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import mqttPacket from 'mqtt-packet'

/** Client frames must be masked (RFC 6455); a zero mask keeps the bytes as they are. */
function maskedBinaryFrame (payload) {
  const length = payload.length
  const header = length < 126
    ? Buffer.from([0x82, 0x80 | length])
    : Buffer.from([0x82, 0x80 | 126, length >> 8, length & 0xff])
  return Buffer.concat([header, Buffer.alloc(4), payload])
}

/** Counts payload bytes of server frames; the first `skip` payload bytes are the handshake. */
class FrameCounter {
  constructor () {
    this.pending = Buffer.alloc(0)
    this.remaining = 0 // payload bytes of the current frame still to come
    this.payloadBytes = 0
  }

  push (chunk) {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk
    this.pending = Buffer.alloc(0)
    let i = 0
    while (i < buf.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, buf.length - i)
        this.payloadBytes += take
        this.remaining -= take
        i += take
        continue
      }
      if (buf.length - i < 2) break
      let length = buf[i + 1] & 0x7f
      let header = 2
      if (length === 126) {
        if (buf.length - i < 4) break
        length = buf.readUInt16BE(i + 2)
        header = 4
      } else if (length === 127) {
        if (buf.length - i < 10) break
        length = Number(buf.readBigUInt64BE(i + 2))
        header = 10
      }
      i += header
      this.remaining = length
    }
    if (i < buf.length) this.pending = buf.subarray(i)
    buf = null
  }
}

export async function openWebSocketSubscribers ({ host = '127.0.0.1', port, count, filter, idPrefix }) {
  const subscribers = []
  for (let start = 0; start < count; start += 100) {
    subscribers.push(...await Promise.all(Array.from({ length: Math.min(100, count - start) }, (_, i) =>
      openOne({ host, port, filter, clientId: `${idPrefix}-${start + i}` }))))
  }
  return {
    sockets: subscribers,
    bytes: () => subscribers.reduce((sum, s) => sum + s.counter.payloadBytes - 9, 0),
    close: () => { for (const s of subscribers) s.socket.destroy() }
  }
}

function openOne ({ host, port, filter, clientId }) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host)
    const counter = new FrameCounter()
    let upgraded = false
    let head = Buffer.alloc(0)
    socket.setNoDelay(true)
    socket.on('error', reject)
    socket.on('connect', () => {
      socket.write(`GET /mqtt HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n`)
    })
    socket.on('data', chunk => {
      if (upgraded) {
        counter.push(chunk)
        return
      }
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      if (!/^HTTP\/1\.1 101/.test(head.toString('latin1', 0, 12))) return reject(new Error(`upgrade refused by port ${port}: ${head.toString('latin1', 0, end)}`))
      upgraded = true
      const state = { socket, counter }
      socket.write(maskedBinaryFrame(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 })))
      socket.write(maskedBinaryFrame(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] })))
      if (head.length > end + 4) counter.push(head.subarray(end + 4))
      // CONNACK (4) + SUBACK (5) payload bytes: subscribed
      const wait = setInterval(() => {
        if (counter.payloadBytes >= 9) { clearInterval(wait); resolve(state) }
      }, 5)
    })
  })
}
