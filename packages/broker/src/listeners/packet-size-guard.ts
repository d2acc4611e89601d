import type { Duplex } from 'node:stream'

/**
 * Refuses an MQTT packet larger than `maxPacketSize` as soon as its fixed header
 * announces the length, before the body is buffered: mqtt-packet would otherwise
 * accumulate up to 256 MiB per connection. It wraps the connection's `read()`, which
 * Aedes uses to pull bytes, so it costs nothing on the write path that fan-out uses.
 */
export function guardPacketSize (conn: Duplex, maxPacketSize: number, onRefused: (reason: string) => void): void {
  let skip = 0 // body bytes of the current packet still to pass
  let inLength = false
  let length = 0
  let multiplier = 1
  let lengthBytes = 0
  const read = conn.read.bind(conn)

  conn.read = function guardedRead (size?: number) {
    const chunk = read(size) as Buffer | null
    if (chunk === null) return null
    let i = 0
    while (i < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - i)
        skip -= n
        i += n
        continue
      }
      if (!inLength) { // the fixed header's first byte: packet type and flags
        inLength = true
        length = 0
        multiplier = 1
        lengthBytes = 0
        i++
        continue
      }
      const byte = chunk[i++]!
      length += (byte & 0x7f) * multiplier
      multiplier *= 128
      lengthBytes++
      if ((byte & 0x80) === 0) {
        inLength = false
        const total = 1 + lengthBytes + length
        if (total > maxPacketSize) return refuse(`packet of ${total} bytes exceeds limits.maxPacketSize (${maxPacketSize})`)
        skip = length
      } else if (lengthBytes === 4) {
        return refuse('malformed remaining length') // [MQTT-2.2.3]: at most four bytes
      }
    }
    return chunk
  }

  function refuse (reason: string): null {
    onRefused(reason)
    conn.destroy()
    return null
  }
}
