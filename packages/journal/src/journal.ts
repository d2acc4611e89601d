import { createHash } from 'node:crypto'
import type { JournalEntry, NewEntry } from './entry.js'

/** How long and how much the journal keeps; whichever bites first. */
export interface Retention {
  maxAgeMs: number
  maxBytes: number
}

/** Where the journal stands: what a reader can ask for, and the figures /metrics shows. */
export interface JournalBounds {
  /** the oldest offset still held (last + 1 when empty) */
  first: number
  /** the newest offset given (0 before the first append) */
  last: number
  /** bytes of the entries held */
  bytes: number
  /** entries appended since start */
  appends: number
}

/**
 * A QoS 2 publish's identity while it is in flight: the publisher's client id and packet id.
 * The journal keeps it with the entry until `release`, so a retransmission of the same
 * packet (after the broker, or a cluster node, died before acknowledging it) is not journaled
 * twice.
 */
export interface InFlight {
  client: string
  packetId: number
}

/** What identifies a retransmission besides its packet id: the same topic and payload. */
export function digestOf (entry: { topic: string, payload: Buffer }): string {
  return createHash('sha1').update(entry.topic).update('\u0000').update(entry.payload).digest('base64')
}

/**
 * The journal of accepted events. Appends are group-committed: those made while a write is
 * under way go out together in the next one. `appended` listeners get each committed batch,
 * in offset order — what live readers follow.
 */
export interface Journal {
  /**
   * Resolves once the entry is on disk (or in Redis), with its offset and timestamp. With
   * `inFlight` already held (not released), nothing is appended: it resolves with the offset
   * the first transmission got.
   */
  append: (entry: NewEntry, inFlight?: InFlight) => Promise<JournalEntry>
  /** Forgets a packet id (PUBREL), or all of a client's (a clean session). */
  release: (client: string, packetId?: number) => Promise<void>
  /** up to `limit` entries from offset `from` on (inclusive), oldest first */
  read: (from: number, limit: number) => Promise<JournalEntry[]>
  /** the first offset whose timestamp is at or after `timestamp` (last + 1 when none) */
  offsetAt: (timestamp: number) => Promise<number>
  bounds: () => JournalBounds
  onAppended: (listener: (entries: readonly JournalEntry[]) => void) => () => void
  close: () => Promise<void>
}

/**
 * The smallest offset in [first, last + 1] whose entry (or the next one held) is at or after
 * `timestamp`, by binary search: timestamps never decrease with the offset.
 */
export async function firstOffsetAt (timestamp: number, first: number, last: number, read: Journal['read']): Promise<number> {
  let low = first
  let high = last + 1
  while (low < high) {
    const mid = Math.floor((low + high) / 2)
    const [found] = await read(mid, 1)
    if (found === undefined || found.timestamp >= timestamp) high = mid
    else low = mid + 1
  }
  return low
}

/** Who follows a journal's appends: the listeners `onAppended` registers, told of each batch in order. */
export class Announcer {
  readonly #listeners = new Set<(entries: readonly JournalEntry[]) => void>()

  add (listener: (entries: readonly JournalEntry[]) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  announce (entries: readonly JournalEntry[]): void {
    for (const listener of this.#listeners) listener(entries)
  }
}
