import type { JournalEntry } from '@firehose/journal'
import { FRAME_TAIL, sseFrame } from './envelope.js'

/** Bytes of history frames per buffer handed to the socket. */
const CHUNK = 256 * 1024

/**
 * One SSE reader's unsent frames. History is framed straight into large buffers of this
 * reader's own, reused once the socket has sent them: a replay frames hundreds of thousands of
 * events, and a buffer per event — or a new megabyte per page — is garbage that V8 collects
 * far more often than the replay itself costs (external memory starts its full collections).
 * Live frames are shared by every live reader of an entry (FrameCache) and only gathered here.
 * A JSON payload without line breaks is copied as it is, never decoded or encoded again.
 */
export class SseOutput {
  /** buffers ready to write, in order */
  readonly #ready: Buffer[] = []
  #readyBytes = 0
  /** live frames since the last flush, written as one buffer */
  readonly #live: Buffer[] = []
  #liveBytes = 0
  /** the history buffer being filled, and how far */
  #chunk: Buffer | undefined
  #at = 0
  /** the last topic framed, and its JSON text */
  #topic = ''
  #topicJson = '""'
  /** history buffers the socket has sent, to fill again */
  readonly #free: Buffer[] = []
  /** what was written of a reusable history buffer -> that buffer */
  readonly #chunkOf = new WeakMap<Buffer, Buffer>()

  /** Bytes framed and not yet flushed. */
  get length (): number {
    return this.#readyBytes + this.#liveBytes + this.#at
  }

  /** Frames an entry of history (this reader's own copy). */
  add (entry: JournalEntry): void {
    this.#closeLive()
    if (entry.topic !== this.#topic) this.#topicJson = JSON.stringify(this.#topic = entry.topic)
    const { head, payload } = sseFrame(entry, this.#topicJson)
    // UTF-8 takes at most 3 bytes per UTF-16 unit
    const chunk = this.#room(3 * head.length + (payload === undefined ? 0 : payload.length + FRAME_TAIL.length))
    this.#at += chunk.write(head, this.#at)
    if (payload === undefined) return
    this.#at += payload.copy(chunk, this.#at)
    this.#at += chunk.write(FRAME_TAIL, this.#at, 'latin1')
  }

  /** Adds a live entry's frame, made once for all its readers. */
  addFrame (parts: readonly Buffer[]): void {
    this.#closeChunk()
    for (const part of parts) {
      this.#live.push(part)
      this.#liveBytes += part.length
    }
  }

  /** Hands everything framed to `write`, in order; `sent`, when given, is to be called once the socket has sent it. */
  flush (write: (data: Buffer, sent?: () => void) => void): void {
    this.#closeChunk()
    this.#closeLive()
    const ready = this.#ready.splice(0)
    this.#readyBytes = 0
    for (const data of ready) {
      const whole = this.#chunkOf.get(data)
      write(data, whole === undefined ? undefined : () => { this.#free.push(whole) })
    }
  }

  /** The chunk to write `size` more bytes into: the current one if they fit, else another. */
  #room (size: number): Buffer {
    if (this.#chunk !== undefined && this.#at + size <= this.#chunk.length) return this.#chunk
    this.#closeChunk()
    this.#chunk = size <= CHUNK ? this.#free.pop() ?? Buffer.allocUnsafeSlow(CHUNK) : Buffer.allocUnsafeSlow(size)
    return this.#chunk
  }

  #closeChunk (): void {
    if (this.#chunk === undefined) return
    const reusable = this.#chunk.length === CHUNK
    if (this.#at > 0) {
      const data = this.#chunk.subarray(0, this.#at)
      if (reusable) this.#chunkOf.set(data, this.#chunk)
      this.#push(data)
    } else if (reusable) {
      this.#free.push(this.#chunk)
    }
    this.#chunk = undefined
    this.#at = 0
  }

  #closeLive (): void {
    if (this.#live.length === 0) return
    this.#push(this.#live.length === 1 ? this.#live[0]! : Buffer.concat(this.#live, this.#liveBytes))
    this.#live.length = 0
    this.#liveBytes = 0
  }

  #push (data: Buffer): void {
    this.#ready.push(data)
    this.#readyBytes += data.length
  }
}
