// A lean MQTT load generator: raw sockets, packets built once with mqtt-packet, deliveries
// counted from bytes (every PUBLISH in a run has the same size), so the generator is not the
// bottleneck the way one full client object per connection would be.
import { connect } from 'node:net'
import mqttPacket from 'mqtt-packet'

const generate = packet => mqttPacket.generate(packet)

/** Opens `count` subscribers on `filter`, resolved once every SUBACK has arrived. */
export async function openSubscribers ({ host = '127.0.0.1', port, count, filter, idPrefix }) {
  const subscribers = []
  const batch = 100
  for (let start = 0; start < count; start += batch) {
    const made = await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, i) =>
      openSubscriber({ host, port, filter, clientId: `${idPrefix}-${start + i}` })))
    subscribers.push(...made)
  }
  return {
    sockets: subscribers,
    /** bytes received since the last reset, over all subscribers */
    bytes: () => subscribers.reduce((sum, s) => sum + s.received, 0),
    reset: () => { for (const s of subscribers) s.received = 0 },
    close: () => { for (const s of subscribers) s.socket.destroy() }
  }
}

function openSubscriber ({ host, port, filter, clientId }) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host)
    const state = { socket, received: 0 }
    let handshake = Buffer.alloc(0)
    let subscribed = false
    socket.setNoDelay(true)
    socket.on('error', reject)
    socket.on('connect', () => {
      socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 }))
      socket.write(generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] }))
    })
    socket.on('data', chunk => {
      if (subscribed) { state.received += chunk.length; return }
      handshake = Buffer.concat([handshake, chunk])
      // CONNACK (4 bytes) then SUBACK (5 bytes); anything after is deliveries
      if (handshake.length >= 9) {
        if (handshake[0] !== 0x20 || handshake[4] !== 0x90) return reject(new Error(`unexpected handshake from port ${port}: ${handshake.subarray(0, 9).toString('hex')}`))
        subscribed = true
        state.received = handshake.length - 9
        resolve(state)
      }
    })
  })
}

/** A publisher socket that writes one pre-built PUBLISH as fast as the socket drains. */
export async function openPublisher ({ host = '127.0.0.1', port, clientId, username, password }) {
  const socket = connect(port, host)
  socket.setNoDelay(true)
  await new Promise((resolve, reject) => {
    socket.once('error', reject)
    socket.once('connect', () => {
      socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0, username, password: Buffer.from(password) }))
    })
    socket.once('data', chunk => chunk[0] === 0x20 && chunk[3] === 0 ? resolve() : reject(new Error(`CONNACK refused: ${chunk.toString('hex')}`)))
  })
  return {
    socket,
    publishPacket: (topic, payload) => generate({ cmd: 'publish', topic, payload, qos: 0, retain: false }),
    close: () => socket.destroy()
  }
}

/**
 * Publishes `packet` for `seconds` as fast as the subscribers take it: a closed loop that
 * keeps at most `window` deliveries per subscriber outstanding, so the figure is what the
 * broker sustains, not how much it can buffer. Returns messages published.
 */
export async function flood (publisher, packet, seconds, subscribers, window = 64) {
  const size = packet.length
  const burst = Buffer.concat(Array.from({ length: 16 }, () => packet))
  const count = subscribers.count ?? subscribers.sockets.length
  const end = Date.now() + seconds * 1000
  const before = subscribers.bytes()
  let sent = 0
  while (Date.now() < end) {
    const delivered = (subscribers.bytes() - before) / size
    if (sent * count - delivered > window * count) {
      // not setImmediate: a spinning wait would take a core the brokers need
      if (subscribers.reported === undefined) await new Promise(resolve => setTimeout(resolve, 1))
      else await subscribers.reported(5)
      continue
    }
    if (!publisher.socket.write(burst)) await new Promise(resolve => publisher.socket.once('drain', resolve))
    sent += 16
  }
  return sent
}

/** CPU time (user + system) of this process, in seconds, since `since` (a process.cpuUsage()). */
export function cpuSeconds (since) {
  const d = process.cpuUsage(since)
  return (d.user + d.system) / 1e6
}
