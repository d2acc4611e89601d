import { Socket } from 'node:net'
import { Readable } from 'node:stream'

const FRAMING = Symbol('firehose.webSocketFraming')
/** marks a Buffer that already is a whole frame: a control frame the broker answers with */
const RAW = Symbol('firehose.webSocketFraming.raw')
const EMPTY = Buffer.alloc(0)
/** how long a closing connection may take to flush its close frame before it is destroyed (ws waits as long) */
const CLOSE_TIMEOUT_MS = 30_000

/**
 * Where one connection is in the frames it receives (RFC 6455 5.2). Kept only while there is
 * something to keep — a frame under way, a fragmented message, a cut header, a close — so an
 * idle connection holds just its listener's WebSocketFraming.
 */
class FrameReader {
  /** the start of a frame header that a read cut (at most 13 bytes), or null */
  partial: Buffer | null = null
  /** payload bytes of the current frame still to come; -1 between frames */
  remaining = -1
  opcode = 0
  /** the frame's masking key, its four bytes big-endian */
  mask = 0
  /** payload bytes of the current frame unmasked so far */
  maskOffset = 0
  /** inside a fragmented binary message: a continuation frame is due */
  fragmented = false
  /** a control frame's payload as it arrives (ping data, close code) */
  control: Buffer | null = null
  controlLength = 0
  /** a close frame was sent: whatever the client sends after it is dropped */
  closing = false

  constructor (readonly framing: WebSocketFraming) {}

  /** Whether it holds nothing the next read needs. */
  get idle (): boolean {
    return this.remaining < 0 && !this.fragmented && this.partial === null && !this.closing
  }
}

type FramedSocket = Socket & { [FRAMING]: FrameReader | WebSocketFraming }
type Chunk = Buffer & { [RAW]?: true }
interface WriteEntry { chunk: Chunk | string, encoding: BufferEncoding | 'buffer' }
type WriteCallback = (err?: Error | null) => void

const readablePush = Readable.prototype.push
const socketWrite = Socket.prototype._write
const socketWritev = Socket.prototype._writev as (this: Socket, chunks: WriteEntry[], callback: WriteCallback) => void

/**
 * MQTT over WebSocket on the connection's own socket: after the handshake
 * (websocket-handshake.ts) the TCP (or TLS) socket itself is the stream Aedes reads and
 * writes, with WebSocket framing done in place. Reads: what Node pushes into the socket is
 * parsed as frames and only the unmasked payload of binary frames is pushed on, so Aedes reads
 * the MQTT byte stream (MQTT over WebSocket lets a packet span frames and a frame hold many
 * packets); pings are answered, a close frame is answered and the connection closed.
 * Writes: each write (or the chunks a corked socket collected, as Aedes and the write
 * coalescer cork) goes out as one binary frame, its header written before the chunks in one
 * writev(2), no copy.
 *
 * Before this, each connection had ws's WebSocket with its receiver (a Writable) and sender,
 * and ws's stream wrapper (a Duplex) with its closures on top: about 3 KiB of an idle
 * subscriber's heap, more than the TCP connection under it. Per connection this keeps four
 * own properties (`push`, `_write`, `_writev`: functions all connections share; the framing
 * state), and a small state object only while a frame is under way. (Not a prototype of
 * framed sockets instead: V8 gave each socket moved onto it maps of its own, 1.3 KB.) The
 * frame rules ws enforced are enforced here (a client's frames are masked, no
 * RSV bits, control frames whole and at most 125 bytes, continuation only inside a message),
 * with MQTT's: text frames are refused [MQTT-6.0.0-1]. A frame that breaks them closes the
 * connection with the RFC's close code, is logged and counted.
 *
 * Written against Node 20's net.Socket: its reads arrive through `stream.push(buffer)`
 * (lib/internal/stream_base_commons.js onStreamRead), and `Socket.prototype._write` /
 * `_writev` write straight to the handle. `checkSocketFraming` checks what can be checked at
 * start; test/websocket-framing.test.ts is the contract test.
 */
export class WebSocketFraming {
  /**
   * @param maxFrameBytes a data frame's largest payload (limits.maxPacketSize, as ws's maxPayload was)
   * @param writeBufferBytes how much the socket buffers before write() says "wait" (see listener.ts writeBufferBytes)
   * @param onRefused logs and counts a connection closed for a frame that breaks the rules
   */
  constructor (readonly maxFrameBytes: number, readonly writeBufferBytes: number, readonly onRefused: (socket: Socket, reason: string) => void) {
    checkSocketFraming()
  }

  /** Makes `socket`, just upgraded, the MQTT stream; `head` is what the client sent after its request. */
  install (socket: Socket, head: Buffer): void {
    const framed = socket as FramedSocket
    framed[FRAMING] = this
    framed.push = framedPush
    framed._write = framedWrite
    framed._writev = framedWritev as Socket['_writev']
    writableState(socket).highWaterMark = this.writeBufferBytes
    socket.setTimeout(0)
    socket.setNoDelay(true)
    if (head.length > 0) framedPush.call(framed, head)
  }

  /** Parses `chunk`'s frames; pushes binary payload on. Returns push()'s answer: false asks Node to stop reading for now. */
  read (socket: FramedSocket, reader: FrameReader, chunk: Buffer): boolean {
    let more = true
    let buf = chunk
    if (reader.partial !== null) {
      buf = Buffer.concat([reader.partial, chunk])
      reader.partial = null
    }
    let pos = 0
    while (pos < buf.length && !reader.closing) {
      if (reader.remaining < 0) {
        const used = this.#header(socket, reader, buf, pos)
        if (used === 0) {
          // a copy: an idle connection must not keep a whole read's buffer for 13 bytes
          reader.partial = Buffer.from(buf.subarray(pos))
          return more
        }
        if (used < 0) return more
        pos += used
        if (reader.remaining === 0) this.#frameDone(socket, reader)
        continue
      }
      const n = Math.min(reader.remaining, buf.length - pos)
      if (reader.opcode < 8) {
        unmask(buf, pos, n, reader.mask, reader.maskOffset)
        more = readablePush.call(socket, buf.subarray(pos, pos + n))
      } else {
        buf.copy(reader.control!, reader.controlLength, pos, pos + n)
        unmask(reader.control!, reader.controlLength, n, reader.mask, reader.maskOffset)
        reader.controlLength += n
      }
      reader.maskOffset += n
      reader.remaining -= n
      pos += n
      if (reader.remaining === 0) this.#frameDone(socket, reader)
    }
    return more
  }

  /** Reads the frame header at `pos`: its length in bytes, 0 when the read holds only part of it, -1 when the frame is refused. */
  #header (socket: FramedSocket, reader: FrameReader, buf: Buffer, pos: number): number {
    const available = buf.length - pos
    if (available < 2) return 0
    const b0 = buf[pos]!
    const b1 = buf[pos + 1]!
    const fin = (b0 & 0x80) !== 0
    const opcode = b0 & 0x0f
    const len7 = b1 & 0x7f
    if ((b0 & 0x70) !== 0) return this.#fail(socket, reader, 1002, 'a WebSocket frame with RSV bits set (no extension was negotiated)')
    if ((b1 & 0x80) === 0) return this.#fail(socket, reader, 1002, 'an unmasked WebSocket frame (a client masks every frame, RFC 6455 5.1)')
    if (opcode >= 8) {
      if (opcode > 10) return this.#fail(socket, reader, 1002, `a WebSocket frame with the unknown opcode ${opcode}`)
      if (!fin) return this.#fail(socket, reader, 1002, 'a fragmented WebSocket control frame')
      if (len7 > 125) return this.#fail(socket, reader, 1002, 'a WebSocket control frame longer than 125 bytes')
    } else if (opcode === 1) {
      return this.#fail(socket, reader, 1003, 'a WebSocket text frame (MQTT is sent in binary frames, [MQTT-6.0.0-1])')
    } else if (opcode === 0) {
      if (!reader.fragmented) return this.#fail(socket, reader, 1002, 'a WebSocket continuation frame with no message to continue')
    } else if (opcode === 2) {
      if (reader.fragmented) return this.#fail(socket, reader, 1002, 'a new WebSocket message inside a fragmented one')
    } else {
      return this.#fail(socket, reader, 1002, `a WebSocket frame with the unknown opcode ${opcode}`)
    }
    const size = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + 4
    if (available < size) return 0
    let at = pos + 2
    let length = len7
    if (len7 === 126) {
      length = buf.readUInt16BE(at)
      at += 2
    } else if (len7 === 127) {
      const high = buf.readUInt32BE(at)
      // over 2^53 - 1 bytes: not a length any client means
      if (high > 0x1fffff) return this.#fail(socket, reader, 1009, 'a WebSocket frame longer than 2^53 - 1 bytes')
      length = high * 2 ** 32 + buf.readUInt32BE(at + 4)
      at += 8
    }
    if (opcode < 8 && length > this.maxFrameBytes) {
      return this.#fail(socket, reader, 1009, `a WebSocket frame of ${length} bytes, over limits.maxPacketSize (${this.maxFrameBytes})`)
    }
    reader.mask = buf.readUInt32BE(at)
    at += 4
    reader.opcode = opcode
    reader.remaining = length
    reader.maskOffset = 0
    if (opcode < 8) {
      reader.fragmented = !fin
    } else {
      reader.control = length === 0 ? EMPTY : Buffer.allocUnsafe(length)
      reader.controlLength = 0
    }
    return at - pos
  }

  /** The current frame's last byte arrived: answers a control frame. */
  #frameDone (socket: FramedSocket, reader: FrameReader): void {
    reader.remaining = -1
    if (reader.opcode < 8) return
    const payload = reader.control!
    reader.control = null
    if (reader.opcode === 9) {
      writeRaw(socket, controlFrame(0x8a, payload)) // ping: pong with its data
    } else if (reader.opcode === 8) {
      if (payload.length === 1) {
        this.#fail(socket, reader, 1002, 'a WebSocket close frame with a one-byte body')
        return
      }
      if (payload.length >= 2 && !validCloseCode(payload.readUInt16BE(0))) {
        this.#fail(socket, reader, 1002, `a WebSocket close frame with the invalid code ${payload.readUInt16BE(0)}`)
        return
      }
      // the client closes: answer with its code (RFC 6455 5.5.1) and close once that is out
      reader.closing = true
      writeRaw(socket, controlFrame(0x88, payload.subarray(0, 2)))
      closeAfterWrites(socket)
    }
    // a pong (opcode 10) needs nothing
  }

  #fail (socket: FramedSocket, reader: FrameReader, code: number, reason: string): -1 {
    reader.closing = true
    reader.partial = null
    reader.control = null
    this.onRefused(socket, reason)
    const body = Buffer.allocUnsafe(2)
    body.writeUInt16BE(code)
    writeRaw(socket, controlFrame(0x88, body))
    closeAfterWrites(socket)
    return -1
  }
}

// shared by every connection (own properties of each framed socket, not closures per connection)
function framedPush (this: FramedSocket, chunk: Buffer | null): boolean {
  if (chunk === null) return readablePush.call(this, null)
  const held = this[FRAMING]
  const reader = held instanceof FrameReader ? held : new FrameReader(held)
  if (reader.closing) return true
  const more = reader.framing.read(this, reader, chunk)
  this[FRAMING] = reader.idle ? reader.framing : reader
  return more
}

function framedWrite (this: FramedSocket, chunk: Chunk | string, encoding: BufferEncoding, callback: WriteCallback): void {
  if (typeof chunk !== 'string' && chunk[RAW] === true) {
    socketWrite.call(this, chunk, encoding, callback)
    return
  }
  const data = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk
  socketWritev.call(this, [{ chunk: frameHeader(data.length), encoding: 'buffer' }, { chunk: data, encoding: 'buffer' }], callback)
}

/** The chunks a corked socket collected: each run of them one frame, control frames as they are. */
function framedWritev (this: FramedSocket, chunks: WriteEntry[], callback: WriteCallback): void {
  const out: WriteEntry[] = []
  let headerAt = -1
  let length = 0
  for (const entry of chunks) {
    const { chunk } = entry
    if (typeof chunk !== 'string' && chunk[RAW] === true) {
      if (headerAt >= 0) out[headerAt] = { chunk: frameHeader(length), encoding: 'buffer' }
      headerAt = -1
      length = 0
      out.push(entry)
      continue
    }
    if (headerAt < 0) {
      headerAt = out.length
      out.push(entry) // replaced by the header once the run's length is known
    }
    const data = typeof chunk === 'string' ? Buffer.from(chunk, entry.encoding as BufferEncoding) : chunk
    out.push(data === chunk ? entry : { chunk: data, encoding: 'buffer' })
    length += data.length
  }
  if (headerAt >= 0) out[headerAt] = { chunk: frameHeader(length), encoding: 'buffer' }
  socketWritev.call(this, out, callback)
}

/** A server's (unmasked) binary frame header, FIN set, for `length` bytes of payload (RFC 6455 5.2). */
export function frameHeader (length: number): Buffer {
  if (length < 126) return Buffer.from([0x82, length])
  if (length < 65536) {
    const header = Buffer.allocUnsafe(4)
    header[0] = 0x82
    header[1] = 126
    header.writeUInt16BE(length, 2)
    return header
  }
  const header = Buffer.allocUnsafe(10)
  header[0] = 0x82
  header[1] = 127
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
  header.writeUInt32BE(length >>> 0, 6)
  return header
}

/** A whole control frame (`first`: FIN and opcode), its payload at most 125 bytes. */
function controlFrame (first: number, payload: Buffer): Chunk {
  const frame = Buffer.allocUnsafe(2 + payload.length)
  frame[0] = first
  frame[1] = payload.length
  payload.copy(frame, 2)
  return frame
}

/** Writes a whole frame in order with the socket's other writes, not framed again. */
function writeRaw (socket: Socket, frame: Chunk): void {
  if (!socket.writable) return
  frame[RAW] = true
  socket.write(frame)
}

function closeAfterWrites (socket: Socket): void {
  if (socket.destroyed) return
  const timer = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS)
  timer.unref()
  socket.once('close', () => clearTimeout(timer))
  socket.once('finish', destroySocket)
  socket.end()
}

function destroySocket (this: Socket): void {
  this.destroy()
}

/** RFC 6455 7.4: the codes an endpoint may send in a close frame. */
function validCloseCode (code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999)
}

/** XORs `n` bytes of `buf` from `start` with the masking key, `offset` bytes into the frame's payload. */
function unmask (buf: Buffer, start: number, n: number, mask: number, offset: number): void {
  for (let i = 0; i < n; i++) buf[start + i] = buf[start + i]! ^ ((mask >>> (24 - 8 * ((offset + i) & 3))) & 0xff)
}

function writableState (socket: Socket): { highWaterMark: number } {
  return (socket as unknown as { _writableState: { highWaterMark: number } })._writableState
}

/**
 * What WebSocketFraming relies on in Node's net.Socket and can see without a connection;
 * throws, naming what changed, so the broker refuses to start rather than mis-frame.
 */
export function checkSocketFraming (): void {
  const problems: string[] = []
  if (Socket.prototype.push !== Readable.prototype.push) problems.push('net.Socket overrides push(), through which its reads arrive')
  if (typeof Socket.prototype._write !== 'function' || typeof Socket.prototype._writev !== 'function') problems.push('net.Socket has no _write/_writev of its own')
  const probe = new Socket()
  if (typeof (probe as unknown as { _writableState?: { highWaterMark?: unknown } })._writableState?.highWaterMark !== 'number') problems.push('net.Socket keeps no _writableState.highWaterMark')
  probe.destroy()
  if (problems.length > 0) throw new Error(`MQTT over WebSocket (listeners/websocket-framing.ts, written against Node 20's net.Socket) would not work on Node ${process.versions.node}: ${problems.join('; ')}`)
}
