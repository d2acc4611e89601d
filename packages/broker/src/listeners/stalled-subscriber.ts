import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { BrokerStats } from '../observability/stats.js'

interface WebSocketConn { socket?: { bufferedAmount: number } }

const ORIGINAL_WRITE = Symbol('firehose.stalledGuard.write')
const GUARD = Symbol('firehose.stalledGuard')
const CHECK_PENDING = Symbol('firehose.stalledGuard.pending')

type Guarded = Duplex & { [ORIGINAL_WRITE]: Duplex['write'], [GUARD]: StalledSubscriberGuard, [CHECK_PENDING]: boolean, client?: { id: string | null } }

/** Bytes written to a connection and not yet sent: its stream's buffer, and ws's below it. */
export function queuedBytes (conn: Duplex): number {
  return conn.writableLength + ((conn as WebSocketConn).socket?.bufferedAmount ?? 0)
}

/**
 * A subscriber whose unsent bytes pass limits.maxQueuedBytes is stalled (a frozen browser
 * tab, a suspended laptop): it is disconnected and counted, so it holds no memory and slows
 * no one. Checked when a write fills the connection's buffer (connections buffer exactly
 * limits.maxQueuedBytes before write() says "wait"), so nothing ever waits for a stalled
 * subscriber to drain — not a delivery slot, not the publisher's PUBACK or PUBREC, which
 * follow the deliveries — and again before each delivery (authorizeForward).
 */
export class StalledSubscriberGuard {
  constructor (private readonly max: number, private readonly stats: BrokerStats, private readonly logger: Logger) {}

  /** Whether `conn` is past the bound; when it is, it is disconnected (once) and counted. */
  check (conn: Duplex, clientId: string | null | undefined): boolean {
    const queued = queuedBytes(conn)
    if (queued <= this.max) return false
    this.stats.deliveriesDropped++
    if (!conn.destroyed) {
      this.stats.slowClientsDisconnected++
      this.logger.warn({ event: 'client.stalled', clientId, queuedBytes: queued }, 'disconnecting stalled subscriber: outgoing queue passed limits.maxQueuedBytes')
      conn.destroy()
    }
    return true
  }

  /** Checks `conn` whenever a write leaves its buffer full. */
  watch (conn: Duplex): void {
    const guarded = conn as Guarded
    guarded[ORIGINAL_WRITE] = conn.write
    guarded[GUARD] = this
    guarded[CHECK_PENDING] = false
    conn.write = guardedWrite as Duplex['write']
  }
}

// shared by every connection (an own property per connection, not a closure per connection);
// fixed parameters, not a rest array: this runs for every delivery Aedes writes
function guardedWrite (this: Guarded, chunk: unknown, encoding?: BufferEncoding | ((err?: Error | null) => void), callback?: (err?: Error | null) => void): boolean {
  const ok = (this[ORIGINAL_WRITE] as (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean).call(this, chunk, encoding, callback)
  if (!ok && !this.destroyed && !this[CHECK_PENDING]) {
    // once, after this turn's writes (every write of a full buffer returns false):
    // disconnecting in the middle of a packet would only add errors
    this[CHECK_PENDING] = true
    setImmediate(() => {
      this[CHECK_PENDING] = false
      this[GUARD].check(this, this.client?.id)
    })
  }
  return ok
}
