import type { Duplex } from 'node:stream'

const STATE = Symbol('firehose.packetSizeGuard')

/** Where one connection is in its stream of packets */
interface GuardState {
  readonly guard: PacketSizeGuard
  readonly read: Duplex['read']
  /** body bytes of the current packet still to pass */
  skip: number
  inLength: boolean
  length: number
  multiplier: number
  lengthBytes: number
}

type Guarded = Duplex & { [STATE]: GuardState }

/**
 * Refuses an MQTT packet larger than `maxPacketSize` as soon as its fixed header
 * announces the length, before the body is buffered: mqtt-packet would otherwise
 * accumulate up to 256 MiB per connection. It wraps the connection's `read()`, which
 * Aedes uses to pull bytes, so it costs nothing on the write path that fan-out uses.
 * One guard per listener; per connection, one small state object (no closures: an idle
 * subscriber's memory is mostly what is kept per connection).
 */
export class PacketSizeGuard {
  constructor (readonly maxPacketSize: number, readonly onRefused: (conn: Duplex, reason: string) => void) {}

  watch (conn: Duplex): void {
    const guarded = conn as Guarded
    guarded[STATE] = { guard: this, read: conn.read, skip: 0, inLength: false, length: 0, multiplier: 1, lengthBytes: 0 }
    guarded.read = guardedRead
  }
}

function guardedRead (this: Guarded, size?: number): Buffer | null {
  const state = this[STATE]
  const chunk = state.read.call(this, size) as Buffer | null
  if (chunk === null) return null
  let i = 0
  while (i < chunk.length) {
    if (state.skip > 0) {
      const n = Math.min(state.skip, chunk.length - i)
      state.skip -= n
      i += n
      continue
    }
    if (!state.inLength) { // the fixed header's first byte: packet type and flags
      state.inLength = true
      state.length = 0
      state.multiplier = 1
      state.lengthBytes = 0
      i++
      continue
    }
    const byte = chunk[i++]!
    state.length += (byte & 0x7f) * state.multiplier
    state.multiplier *= 128
    state.lengthBytes++
    if ((byte & 0x80) === 0) {
      state.inLength = false
      const total = 1 + state.lengthBytes + state.length
      if (total > state.guard.maxPacketSize) return refuse(this, `packet of ${total} bytes exceeds limits.maxPacketSize (${state.guard.maxPacketSize})`)
      state.skip = state.length
    } else if (state.lengthBytes === 4) {
      return refuse(this, 'malformed remaining length') // [MQTT-2.2.3]: at most four bytes
    }
  }
  return chunk
}

function refuse (conn: Guarded, reason: string): null {
  conn[STATE].guard.onRefused(conn, reason)
  conn.destroy()
  return null
}
