import { EventEmitter } from 'node:events'

export type BridgeState = 'connected' | 'reconnecting' | 'stopped'

/**
 * The bridge's health, published retained on `firehose/bridges/<name>`:
 * `{ state, since, lastEventAt, outboxDepth, ... }`. The state follows the source
 * ("reconnecting" while it is down); the MQTT will sets "offline" when the broker loses us.
 * Every change — a state, an event from the source, an event acknowledged — publishes it
 * again, coalesced (the publisher sends the latest at most every STATUS_COALESCE_MS, 200 ms).
 */
export class StatusReporter extends EventEmitter {
  private state: BridgeState = 'reconnecting'
  private since: string
  private lastEventAt: string | null = null
  private extra: Record<string, unknown> = {}

  constructor (private readonly now: () => number = Date.now, private readonly depth: () => number = () => 0, lastEventAt?: number) {
    super()
    this.since = new Date(now()).toISOString()
    if (lastEventAt !== undefined) this.lastEventAt = new Date(lastEventAt).toISOString()
  }

  get current (): BridgeState { return this.state }

  setState (state: BridgeState, extra: Record<string, unknown> = {}): void {
    if (state !== this.state) {
      this.state = state
      this.since = new Date(this.now()).toISOString()
    }
    this.extra = extra
    this.emit('change')
  }

  /** Extra fields that outlive state changes (a gap the source could not fill, say). */
  annotate (fields: Record<string, unknown>): void {
    this.extra = { ...this.extra, ...fields }
    this.emit('change')
  }

  /** An event from the source: `lastEventAt` moves, and the status is published again (coalesced). */
  eventSeen (at: number = this.now()): void {
    this.lastEventAt = new Date(at).toISOString()
    this.emit('change')
  }

  /** The broker acknowledged an event: `outboxDepth` moved. */
  eventDelivered (): void {
    this.emit('change')
  }

  toJSON (): Record<string, unknown> {
    return { state: this.state, since: this.since, lastEventAt: this.lastEventAt, outboxDepth: this.depth(), ...this.extra }
  }
}
