/** What the journal uses of a classic-level iterator over its entries. */
export interface EntryIterator {
  nextv: (size: number) => Promise<Array<[string, Buffer]>>
  close: () => Promise<void>
}

interface Cursor {
  iterator: EntryIterator
  /** ms (monotonic) it was put back */
  since: number
}

/**
 * LevelDB iterators left open where a reader's last page ended, by the offset that page stops
 * before: the reader's next page goes on from there instead of seeking again through every
 * level of a large journal. An iterator sees the journal as it was when it was opened, so the
 * journal keeps one only after a full page (a short one may be the end: the next read opens a
 * fresh iterator and sees what was appended since); ones unused for `idleMs` are closed.
 */
export class ReadCursors {
  readonly #open = new Map<number, Cursor>()

  constructor (private readonly maxOpen = 64, private readonly idleMs = 1000) {}

  /** The iterator whose next entry is `next`, if one is open (it is the caller's until kept again). */
  take (next: number): EntryIterator | undefined {
    const cursor = this.#open.get(next)
    if (cursor === undefined) return undefined
    this.#open.delete(next)
    return cursor.iterator
  }

  /** Keeps an iterator whose next entry is `next`, closing the longest kept if there are too many. */
  keep (next: number, iterator: EntryIterator): void {
    const replaced = this.#open.get(next)
    if (replaced !== undefined) close(replaced.iterator)
    this.#open.delete(next)
    if (this.#open.size >= this.maxOpen) {
      const [oldest] = this.#open.keys()
      this.#closeAt(oldest!)
    }
    this.#open.set(next, { iterator, since: performance.now() })
  }

  /** Closes the iterators unused for idleMs, and those before `first` (past retention). */
  sweep (first: number): void {
    const stale = performance.now() - this.idleMs
    for (const [next, cursor] of this.#open) if (cursor.since < stale || next < first) this.#closeAt(next)
  }

  async closeAll (): Promise<void> {
    const open = [...this.#open.values()]
    this.#open.clear()
    await Promise.all(open.map(async cursor => { await cursor.iterator.close().catch(() => {}) }))
  }

  get size (): number {
    return this.#open.size
  }

  #closeAt (next: number): void {
    const cursor = this.#open.get(next)
    this.#open.delete(next)
    if (cursor !== undefined) close(cursor.iterator)
  }
}

function close (iterator: EntryIterator): void {
  iterator.close().catch(() => {})
}
