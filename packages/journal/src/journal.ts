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
 * The journal of accepted events. Appends are group-committed: those made while a write is
 * under way go out together in the next one. `appended` listeners get each committed batch,
 * in offset order — what live readers follow.
 */
export interface Journal {
  /** resolves once the entry is on disk (or in Redis), with its offset and timestamp */
  append: (entry: NewEntry) => Promise<JournalEntry>
  /** up to `limit` entries from offset `from` on (inclusive), oldest first */
  read: (from: number, limit: number) => Promise<JournalEntry[]>
  /** the first offset whose timestamp is at or after `timestamp` (last + 1 when none) */
  offsetAt: (timestamp: number) => Promise<number>
  bounds: () => JournalBounds
  onAppended: (listener: (entries: readonly JournalEntry[]) => void) => () => void
  close: () => Promise<void>
}
