import { Writable } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import type { PatchContract } from './contract.js'

const STATE = Symbol('firehose.writeCoalescer.state')
// STATE bits: written this turn; its packets queued from now on this turn; corked by the coalescer until the end of the turn
const HELD = 1
const HOLDING = 2
const CORKED = 4
const COALESCER = Symbol('firehose.writeCoalescer')
const QUEUED = Symbol('firehose.writeCoalescer.queued')
const QUEUED_BYTES = Symbol('firehose.writeCoalescer.queuedBytes')

type Attached = Writable & { [STATE]: number, [COALESCER]: WriteCoalescer, [QUEUED]: Buffer[] | undefined, [QUEUED_BYTES]: number }

const cork = Writable.prototype.cork

/**
 * Written against Aedes 1.2, lib/write.js, which writes each packet with mqtt-packet's
 * `writeToStream`: that corks the connection and uncorks it on the next tick.
 *
 * Aedes corks a connection for each packet it writes and uncorks it on the next tick, so every
 * delivery is its own write(2) — and over WebSocket its own frame (several, in fact: one per
 * chunk of the packet). Under fan-out load one event-loop turn delivers many messages to each
 * subscriber; holding each connection corked until the end of the turn sends all of them in
 * one writev(2) (one frame for WebSocket, see listeners/websocket-framing.ts), which is where most of the
 * broker's time went.
 *
 * At low rates a turn holds one message, and holding it only delays it: every subscriber's
 * delivery would be prepared before the first is written. So a turn after one that wrote no
 * connection twice writes each connection's first packet at once and holds the connection from
 * its second packet on; a turn after one that did write some connection twice holds every
 * connection from its first packet (one write per connection per turn, as under load).
 *
 * Held from the first packet does not mean corked. The QoS 0 fast path (qos0-fast-path.ts)
 * does not write a held connection at all: it queues the packet's bytes with the connection
 * (`queue`), and at the end of the turn the connection gets them in one write. Under a firehose
 * every subscriber gets the same packets in a turn — the same Buffer objects, encoded once — so
 * they are joined once for all of them (`SharedJoin`): a per-delivery stream write (its
 * buffered-chunk object, the stalled-subscriber check, the writev of a dozen chunks per
 * connection) was most of what the broker spent per delivery after the kernel. Only Aedes' own
 * writes (through `cork`) cork a held connection until the end of the turn; one that only had
 * queued packets is written uncorked at the flush, skipping the stream's buffer.
 *
 * Order is kept: queued packets go into the stream before any other write to it (Aedes corks
 * before each write: `coalescingCork`), the rest is the stream's own buffer. `end()` flushes
 * what the stream holds (Aedes only ever destroys connections; a connection destroyed or ended
 * with packets queued drops them, as a corked stream drops its buffer), and the flush is
 * scheduled before any callback Aedes schedules after its write, so a CONNACK refusal is out
 * before Aedes closes the connection.
 */
export class WriteCoalescer {
  #held: Attached[] = []
  #callbacks: Array<() => void> = []
  #scheduled = false
  // whether this turn, and the last one, wrote some connection more than once
  #batched = false
  #lastBatched = true
  /** turns that held every connection from its first packet, and turns that wrote first packets at once (the contract test reads them) */
  readonly turns = { held: 0, writingThrough: 0 }
  /** a turn's queued packets, joined once for every connection that queued the same ones */
  readonly joined = new SharedJoin()
  readonly #flush = (): void => {
    const held = this.#held
    const callbacks = this.#callbacks
    this.#held = []
    this.#callbacks = []
    this.#scheduled = false
    if (this.#lastBatched) this.turns.held++
    else this.turns.writingThrough++
    this.#lastBatched = this.#batched
    this.#batched = false
    for (const stream of held) {
      this.#release(stream)
      const corked = (stream[STATE] & CORKED) !== 0
      stream[STATE] = 0
      if (corked && !stream.destroyed) stream.uncork()
    }
    this.joined.forget()
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
    attached[STATE] = 0
    attached[QUEUED] = undefined
    attached[QUEUED_BYTES] = 0
    attached.cork = coalescingCork
  }

  /**
   * Queues `bytes` (a whole packet) for `stream`, held this turn, to be written at its end;
   * false when `stream` is not held from its first packet this turn (write it now) or when the
   * packet would fill its write buffer: then what is queued goes into the stream, and the
   * caller writes this packet and sees write() say "wait", as without the queue.
   */
  queue (stream: Writable, bytes: Buffer): boolean {
    const attached = stream as Attached
    if (attached[COALESCER] !== this || (attached[STATE] & HOLDING) === 0) return false
    const queuedBytes = attached[QUEUED_BYTES] + bytes.length
    if (attached.writableLength + queuedBytes >= attached.writableHighWaterMark) {
      this.#release(attached)
      return false
    }
    const queued = attached[QUEUED]
    if (queued === undefined) attached[QUEUED] = [bytes]
    else queued.push(bytes)
    attached[QUEUED_BYTES] = queuedBytes
    return true
  }

  // writes what is queued for `stream` into it: one write, or one writev (behind whatever the stream holds corked)
  #release (stream: Attached): void {
    const queued = stream[QUEUED]
    if (queued === undefined) return
    stream[QUEUED] = undefined
    stream[QUEUED_BYTES] = 0
    if (stream.destroyed || stream.writableEnded) return
    const joined = queued.length > 1 ? this.joined.for(queued) : queued[0]
    if (joined !== undefined) {
      stream.write(joined)
      return
    }
    cork.call(stream)
    for (const bytes of queued) stream.write(bytes)
    stream.uncork()
  }

  /** Before a write to `stream` that is not queued (Aedes' own packets): what is queued goes first, and from the second packet of a turn on, writes are held corked until its end. */
  beforeWrite (stream: Writable): void {
    const attached = stream as Attached
    this.hold(attached)
    const state = attached[STATE]
    if ((state & (HOLDING | CORKED)) === HOLDING) {
      attached[STATE] = state | CORKED
      cork.call(attached)
    }
    this.#release(attached)
  }

  /** Called before each packet written or queued for `stream`: notes it as written this turn, and from which packet on its packets are queued (see the class comment). */
  hold (stream: Writable): void {
    const attached = stream as Attached
    const state = attached[STATE]
    if ((state & HELD) !== 0) {
      this.#batched = true
      attached[STATE] = state | HOLDING
      return
    }
    attached[STATE] = this.#lastBatched ? HELD | HOLDING : HELD
    this.#held.push(attached)
    this.#schedule()
  }
}

// shared by every connection (an own property per connection, not a closure per connection)
function coalescingCork (this: Attached): void {
  this[COALESCER].beforeWrite(this)
  cork.call(this)
}

/**
 * Joins the packets queued for a connection once for every connection of the turn that queued
 * the same Buffer objects (one after another: the flush goes through the connections in the
 * order they were first written, and a firehose's subscribers all get the same packets). A
 * connection whose packets differ from the last one's is written its packets as they are:
 * nothing is joined for one connection alone, so there is no copy per subscriber.
 */
export class SharedJoin {
  #buffers: Buffer[] | undefined
  #joined: Buffer | undefined
  /** joins made, and writes that used one (the tests read them) */
  readonly counts = { joins: 0, shared: 0 }

  /** `buffers` joined, when the last call had the same ones; otherwise undefined (and these are remembered). */
  for (buffers: Buffer[]): Buffer | undefined {
    const last = this.#buffers
    if (last === undefined || !sameBuffers(last, buffers)) {
      this.#buffers = buffers
      this.#joined = undefined
      return undefined
    }
    if (this.#joined === undefined) {
      let length = 0
      for (let i = 0; i < last.length; i++) length += last[i]!.length
      this.#joined = Buffer.concat(last, length)
      this.counts.joins++
    }
    this.counts.shared++
    return this.#joined
  }

  /** Let go of this turn's buffers. */
  forget (): void {
    this.#buffers = undefined
    this.#joined = undefined
  }
}

function sameBuffers (a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
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
