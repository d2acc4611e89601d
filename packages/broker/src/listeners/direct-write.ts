import { Socket } from 'node:net'
import type { Writable } from 'node:stream'

/** What of a net.Socket's internals a direct write reads (Node 20's lib/net.js). */
interface SocketInternals {
  _write: unknown
  _writeGeneric: (writev: boolean, data: Buffer, encoding: string, callback: (err?: Error | null) => void) => void
  _handle: { writeQueueSize?: unknown } | null
  connecting: boolean
  encrypted?: boolean
}

const socketWrite = Socket.prototype._write
const writeGeneric = (Socket.prototype as unknown as SocketInternals)._writeGeneric

/** The connection being written to, while a direct write is dispatched (for a synchronous error). */
let writing: Writable | undefined

/**
 * A direct write's callback: called at once by Node when the write is done or failed on the
 * spot (`writing` is its connection), or later with the libuv write request as `this` when the
 * kernel took only part of it and the rest failed. An error destroys the connection, as a
 * Writable does with a failed write.
 */
function afterDirectWrite (this: { handle?: object } | undefined, err?: Error | null): void {
  if (err == null) return
  const socket = writing ?? ownerOf(this?.handle)
  socket?.destroy(err)
}

/** The socket of a handle: Node keeps it under a symbol of its own (`owner_symbol`). */
function ownerOf (handle: object | undefined): Writable | undefined {
  if (handle === undefined) return undefined
  const owner = Object.getOwnPropertySymbols(handle).find(symbol => symbol.description === 'owner_symbol')
  return owner === undefined ? undefined : (handle as Record<symbol, Writable | undefined>)[owner]
}

/**
 * Writes `bytes` to a plain TCP connection below its Writable stream, when nothing is waiting
 * in the stream or under it; false when it cannot (the caller writes with `write()`).
 *
 * Node's `socket.write()` goes through the Writable machinery before the handle: its state,
 * its write queue, a request object, a `process.nextTick` after each write. For a delivery to
 * an idle subscriber that is about a tenth of the delivery's cost, the rest being write(2)
 * itself; at low rates every delivery is one such write, 500 of them per message to 500
 * subscribers, and the p50 latency paid for it (bench/README.md, round 2, item 19). Here, when
 * the stream has nothing buffered, corked or in flight and libuv has nothing queued, the bytes
 * go to `Socket.prototype._writeGeneric`, what the Writable would have called in the end: the
 * same request, the same write(2), the same byte counts (`bytesWritten` comes from the handle),
 * order kept — anything written after goes behind it, in libuv's queue, whichever way it comes.
 * What the kernel did not take stays in libuv's queue (`writeQueueSize`), and the next write
 * then goes through `write()`. A stalled subscriber is still caught when `write()` next says
 * "wait" (listeners/stalled-subscriber.ts); it may hold one direct write's bytes more.
 *
 * Not for TLS connections (their writes are encrypted into a buffer of their own) nor for
 * MQTT over WebSocket (listeners/websocket-framing.ts frames every write in `_write`): both
 * keep `write()`. Written against Node 20's lib/net.js and
 * lib/internal/stream_base_commons.js; `checkDirectWrite` checks at start, and
 * test/direct-write.test.ts is the contract test.
 */
export function writeDirect (stream: Writable, bytes: Buffer): boolean {
  const socket = stream as Writable & SocketInternals
  const handle = socket._handle
  if (socket._write !== socketWrite || handle == null || socket.connecting || socket.encrypted === true ||
    socket.writableLength !== 0 || socket.writableCorked !== 0 || socket.writableEnded || handle.writeQueueSize !== 0) return false
  writing = stream
  try {
    writeGeneric.call(socket, false, bytes, 'buffer', afterDirectWrite)
  } finally {
    writing = undefined
  }
  return true
}

/** Throws when this Node's net.Socket lacks what a direct write calls (checked where deliveries start: qos0-fast-path.ts). */
export function checkDirectWrite (): void {
  const problems: string[] = []
  if (typeof writeGeneric !== 'function' || writeGeneric.length !== 4) problems.push('net.Socket has no _writeGeneric(writev, data, encoding, callback)')
  if (typeof socketWrite !== 'function') problems.push('net.Socket has no _write of its own')
  if (problems.length > 0) throw new Error(`direct writes to subscribers (listeners/direct-write.ts, written against Node 20's net.Socket) would not work on Node ${process.versions.node}: ${problems.join('; ')}`)
}
