import type { JournalEntry } from './entry.js'
import type { Journal } from './journal.js'

export interface FollowOptions {
  /** the first offset to deliver (older ones past retention: from the oldest held) */
  from: number
  /** entries per history read */
  pageSize?: number
  /** only these are delivered; the others are skipped silently (ACL, topic filters, a start time) */
  accept: (entry: JournalEntry) => boolean
  /**
   * Delivers one entry. History waits for the promise it may return (the reader's pace);
   * live entries do not (a reader too slow for them is the caller's to cut off).
   */
  deliver: (entry: JournalEntry, live: boolean) => void | Promise<void>
  /** called once, when history is read to its end and what follows is live */
  caughtUp?: () => void
}

/**
 * Entries per history read: a page of ordinary events (1 KiB) is one trip to LevelDB's thread
 * (the journal reads 128 KiB a trip), so the next page is read whole while this one is
 * delivered; a page is also in memory until delivered, and pages that outlive a young-generation
 * collection or two are promoted and cost a full one later (bench/history.mjs measured 120
 * against 64, 100, 250 and 1000).
 */
const DEFAULT_PAGE = 120

/**
 * Reads the journal from an offset to its end, then follows what is appended — with no gap and
 * no duplicate at the seam: each entry is delivered once, in offset order. Returns the stop
 * function; `done` settles when following ends (stopped, or a read failed).
 */
export function follow (journal: Journal, options: FollowOptions): { stop: () => void, done: Promise<void> } {
  const pageSize = options.pageSize ?? DEFAULT_PAGE
  let next = Math.max(options.from, journal.bounds().first)
  let live = false
  let stopped = false
  /** the highest offset announced while history was being read */
  let announced = 0
  let wake: (() => void) | undefined

  const take = (entry: JournalEntry, isLive: boolean): void | Promise<void> => {
    if (entry.offset < next) return
    next = entry.offset + 1
    if (options.accept(entry)) return options.deliver(entry, isLive)
  }
  const unsubscribe = journal.onAppended(entries => {
    if (stopped) return
    if (!live) {
      announced = Math.max(announced, entries[entries.length - 1]!.offset)
      return
    }
    // live: nothing waits for the reader (take returns the reader's promise only in history)
    for (const entry of entries) take(entry, true)?.catch(() => {})
  })
  const stop = (): void => {
    stopped = true
    unsubscribe()
    wake?.()
  }
  const done = (async () => {
    try {
      let reading = journal.read(next, pageSize)
      for (;;) {
        if (stopped) return
        const page = await reading
        if (page.length === 0) {
          // an entry written after this read began is announced before we get here: read again
          if (announced >= next) {
            reading = journal.read(next, pageSize)
            continue
          }
          live = true
          options.caughtUp?.()
          break
        }
        // the next page is read while this one is delivered (and not left unhandled if we stop)
        reading = journal.read(page[page.length - 1]!.offset + 1, pageSize)
        reading.catch(() => {})
        for (const entry of page) {
          if (stopped) return
          const waiting = take(entry, false)
          if (waiting !== undefined) await waiting
        }
      }
      // stopped during the last read: there is no wake to come
      if (!stopped) await new Promise<void>(resolve => { wake = resolve })
    } finally {
      stop()
    }
  })()
  return { stop, done }
}
