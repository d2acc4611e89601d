import { HttpError } from './reader-access.js'

/** Concurrent history streams (SSE, WebSocket) per client address. */
export class StreamLimits {
  readonly #open = new Map<string, number>()

  constructor (readonly perIp: number) {}

  /** Counts a stream from `ip`, or refuses it with 429; the function returned releases it (once). */
  take (ip: string): () => void {
    const open = this.#open.get(ip) ?? 0
    if (open >= this.perIp) throw new HttpError(429, `too many streams from ${ip} (limits.maxStreamsPerIp: ${this.perIp})`)
    this.#open.set(ip, open + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.#open.get(ip) ?? 1) - 1
      if (left <= 0) this.#open.delete(ip)
      else this.#open.set(ip, left)
    }
  }

  get open (): number {
    let n = 0
    for (const count of this.#open.values()) n += count
    return n
  }
}
