import { Writable } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import type { PatchContract } from './contract.js'

const HELD = Symbol('firehose.writeCoalescer.held')
const COALESCER = Symbol('firehose.writeCoalescer')

type Attached = Writable & { [HELD]?: boolean, [COALESCER]: WriteCoalescer }

const cork = Writable.prototype.cork

/**
 * Written against Aedes 1.2, lib/write.js, which writes each packet with mqtt-packet's
 * `writeToStream`: that corks the connection and uncorks it on the next tick.
 *
 * Aedes corks a connection for each packet it writes and uncorks it on the next tick, so every
 * delivery is its own write(2) — and over WebSocket its own frame (several, in fact: one per
 * chunk of the packet). Under fan-out load one event-loop turn delivers many messages to each
 * subscriber; holding each connection corked until the end of the turn sends all of them in
 * one writev(2) (one frame for WebSocket, see `writeWholeFrames`), which is where most of the
 * broker's time went. At low rates a turn holds one message, so latency does not change.
 *
 * Order is kept (the stream's own buffer), `end()` flushes what is held, and the flush is
 * scheduled before any callback Aedes schedules after its write, so a CONNACK refusal is out
 * before Aedes closes the connection.
 */
export class WriteCoalescer {
  #held: Attached[] = []
  #callbacks: Array<() => void> = []
  #scheduled = false
  readonly #flush = (): void => {
    const held = this.#held
    const callbacks = this.#callbacks
    this.#held = []
    this.#callbacks = []
    this.#scheduled = false
    for (const stream of held) {
      stream[HELD] = false
      if (!stream.destroyed) stream.uncork()
    }
    for (const callback of callbacks) callback()
  }

  #schedule (): void {
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }

  /** Calls `callback` once this turn's writes have been let go (never synchronously). */
  afterFlush (callback: () => void): void {
    this.#callbacks.push(callback)
    this.#schedule()
  }

  /** Coalesce the writes Aedes makes to `stream` (a connection handed to `broker.handle`). */
  attach (stream: Writable): void {
    const attached = stream as Attached
    attached[COALESCER] = this
    attached.cork = coalescingCork
  }

  /** Holds `stream`'s writes until the end of this event-loop turn (once per turn however often called). */
  hold (stream: Writable): void {
    const attached = stream as Attached
    if (attached[HELD] === true) return
    attached[HELD] = true
    cork.call(attached)
    this.#held.push(attached)
    this.#schedule()
  }
}

// shared by every connection (an own property per connection, not a closure per connection)
function coalescingCork (this: Attached): void {
  this[COALESCER].hold(this)
  cork.call(this)
}

/**
 * ws's stream wrapper sends every chunk written to it as its own WebSocket frame. Given a
 * `_writev`, the chunks a corked stream collected go out as one frame: an MQTT packet per
 * frame at least, and under load many packets per frame (MQTT over WebSocket allows both).
 */
export function writeWholeFrames (stream: Writable): void {
  (stream as Writable & { _writev: typeof writevAsOneChunk })._writev = writevAsOneChunk
}

function writevAsOneChunk (this: Writable, chunks: Array<{ chunk: Buffer | string, encoding: BufferEncoding }>, callback: (err?: Error | null) => void): void {
  const buffers = chunks.map(({ chunk, encoding }) => typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk)
  this._write(buffers.length === 1 ? buffers[0] : Buffer.concat(buffers), 'buffer' as BufferEncoding, callback)
}

export const writeCoalescerContract: PatchContract = {
  patch: 'write-coalescer.ts',
  package: 'aedes',
  writtenAgainst: 'lib/write.js (write: mqtt.writeToStream(packet, client.conn)) and mqtt-packet writeToStream (cork, uncork on the next tick)',
  sources: { 'lib/write.js': ['mqtt.writeToStream(packet, client.conn)'] },
  verify () {
    let corked = 0
    const probe = new Writable({ write (_chunk, _encoding, callback) { callback() } })
    probe.cork = () => { corked++ }
    mqttPacket.writeToStream({ cmd: 'pingresp' }, probe)
    return corked === 1 ? [] : ['mqtt-packet writeToStream no longer corks the stream it writes to']
  }
}
