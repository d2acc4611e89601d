import type { JournalEntry } from '@firehose/journal'

/** ms a subscription's filter is kept: its owner's ACL, reloaded, applies within this */
const FILTER_TTL_MS = 1000

/**
 * A subscription's filter (its topics and its owner's read ACL as they stand), made anew at most
 * every FILTER_TTL_MS; meanwhile it remembers its answer per topic.
 */
export class FilterCache {
  #made = 0
  #accepts: ((entry: JournalEntry) => boolean) | undefined

  constructor (private readonly make: () => (entry: JournalEntry) => boolean) {}

  get (): (entry: JournalEntry) => boolean {
    const now = performance.now()
    if (this.#accepts === undefined || now - this.#made > FILTER_TTL_MS) {
      this.#accepts = this.make()
      this.#made = now
    }
    return this.#accepts
  }
}
