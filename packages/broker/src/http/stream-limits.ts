import type { Logger } from 'pino'
import type { BrokerStats } from '../observability/stats.js'
import { HttpError } from './reader-access.js'

/** Unsent bytes past which a history replay waits for its reader (SSE and WebSocket alike). */
export const HISTORY_HIGH_WATER = 1 << 20

/** Answer of every history route on a broker that keeps no journal. */
export const NO_JOURNAL = 'this broker keeps no journal (journal: false, or no persistence): there is no history to read'

/**
 * A live reader whose unsent bytes passed limits.maxQueuedBytes: counted, logged and closed
 * (`close`), as a stalled MQTT subscriber is.
 */
export function cutOffSlowReader (deps: { stats: BrokerStats, logger: Logger }, ip: string, queued: number, close: () => void): void {
  deps.stats.slowReadersDisconnected++
  deps.logger.info({ event: 'history.slow-reader', ip, queued }, 'history reader disconnected: it does not keep up')
  close()
}

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
