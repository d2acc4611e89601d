import type { JournalEntry } from '@firehose/journal'
import type { QueueDeps } from './backend.js'
import { ackIdOf, parseAckId } from './ack-id.js'
import { newCounters, type SubscriptionCounters } from './counters.js'
import { FilterCache } from './filter-cache.js'
import { LeaseBook } from './lease-book.js'
import { Listeners, type Delivery, type Queue } from './queue.js'
import { ops, type DeadLetter, type Lease, type StoreOp, type StoredSubscription, type SubscriptionStore } from './store.js'

export type { Delivery } from './queue.js'

export interface PullQueueDeps extends QueueDeps {
  store: SubscriptionStore
}

/** Entries read from the journal per page while looking for new events (those of the subscription are kept until handed out). */
const PAGE = 250
/**
 * Unread entries a subscription takes from the live tail before it leaves them to its next read:
 * enough for a push worker that keeps up, little for a pull subscription nobody pulls (each
 * entry holds its payload).
 */
const AHEAD_MAX = 100

/**
 * One pull subscription: a cursor into the journal (the next offset not yet looked at), the
 * events pulled and not acked (leases, each with a deadline), and the dead letters. Every change
 * is written to the store before the caller sees it, so a broker killed at any point forgets
 * nothing it has answered: an event is acked once, and until then comes back after its deadline
 * (at least once). Pulls, acks and seeks on one subscription run one after another.
 */
export class PullQueue implements Queue {
  readonly counters: SubscriptionCounters = newCounters()
  #lane: Promise<unknown> = Promise.resolve()
  readonly #filter: FilterCache
  /**
   * Entries of this subscription read from the journal and not handed out yet (from #aheadAt),
   * and the offset reading goes on from: a pull of a few events does not read and decode a
   * page of the journal each time.
   */
  #ahead: JournalEntry[] = []
  #aheadAt = 0
  #scanned: number | undefined
  /** a pull is reading the journal: announcements wait in #held until the read is done */
  #reading = false
  /** appends announced during a read: this subscription's entries of each, and the offsets it spans */
  #held: Array<{ from: number, to: number, mine: readonly JournalEntry[] }> = []
  /** the offset after the last one the journal announced: a subscription scanned up to it has nothing to read */
  #announced: number | undefined

  /** who hears of new events for this subscription (a push worker, waiting pulls) */
  readonly #listeners = new Listeners()

  /** the leases' records on disk, by batch */
  readonly #book: LeaseBook
  /** the batch the pull under way leases into (one record per pull) */
  #pullBatch: number | undefined

  constructor (readonly state: StoredSubscription, private readonly deps: PullQueueDeps) {
    this.#filter = new FilterCache(deps.filter)
    this.#book = new LeaseBook(state.spec.name, state.leases)
  }

  /** Calls `listener` when events for this subscription are appended; returns the stop. */
  onNew (listener: () => void): () => void {
    return this.#listeners.add(listener)
  }

  wake (): void {
    this.#listeners.call()
  }

  /** No one hears of new events any more (the subscription is deleted, or the broker stops). */
  close (): void {
    this.#listeners.clear()
  }

  /** Whether an entry is for this subscription (its filters, its owner's ACL). */
  accepts (entry: JournalEntry): boolean {
    return this.#filter.get()(entry)
  }

  /**
   * An announced append (the manager hands each one to every subscription, with the entries
   * that are its own): one that has read the journal up to it takes its own as they come,
   * instead of reading pages of everybody's events again (the live tail); one that is behind, or
   * holds AHEAD_MAX unread, leaves them to be read when it pulls. During a read they are held,
   * and taken after it if it reached up to them (#takeHeld).
   */
  announced (first: number, last: number, mine: readonly JournalEntry[]): void {
    if (!this.#reading && this.#scanned === first && this.#ahead.length - this.#aheadAt < AHEAD_MAX) {
      for (const entry of mine) this.#ahead.push(entry)
      this.#scanned = last + 1
    } else if (this.#reading && this.#scanned !== undefined) {
      this.#held.push({ from: first, to: last, mine })
    }
    this.#announced = last + 1
    if (mine.length > 0) this.#listeners.call()
  }

  get name (): string {
    return this.state.spec.name
  }

  /** Events pulled and not acked yet. */
  get outstanding (): number {
    return this.state.leases.size
  }

  get deadLetterCount (): number {
    return this.state.deadLetters.size
  }

  /** Nothing to do: this broker's memory is where the queue is. */
  async refresh (): Promise<void> {}

  async deadLetters (): Promise<Array<[number, DeadLetter]>> {
    return [...this.state.deadLetters].sort((a, b) => a[0] - b[0])
  }

  mayHaveEvents (): boolean {
    if (this.#aheadAt < this.#ahead.length || this.#scanned === undefined || this.#scanned !== this.#announced) return true
    const deadline = this.nextDeadline()
    return deadline !== undefined && deadline <= this.deps.now()
  }

  /** The earliest deadline of a lease (ms), if any: when a waiting pull may find a redelivery. */
  nextDeadline (): number | undefined {
    let earliest: number | undefined
    for (const lease of this.state.leases.values()) if (earliest === undefined || lease.deadline < earliest) earliest = lease.deadline
    return earliest
  }

  /** Up to `max` events: due redeliveries first (oldest first), then new ones in journal order. */
  async pull (max: number): Promise<Delivery[]> {
    return await this.#serial(async () => await this.#pull(max))
  }

  /** Acks deliveries; returns how many acked something (a stale or repeated ack id acks nothing). */
  async ack (ackIds: readonly string[]): Promise<number> {
    return await this.#serial(async () => await this.#settle(ackIds, offset => {
      this.#book.drop(offset)
      this.counters.acked++
    }))
  }

  /** Hands deliveries back: due again at once. */
  async nack (ackIds: readonly string[]): Promise<number> {
    return await this.#serial(async () => await this.#settle(ackIds, (offset, lease) => {
      lease.deadline = this.deps.now()
      this.#book.changed(offset)
      this.counters.nacked++
    }).finally(() => { this.#listeners.call() }))
  }

  /** Goes on from `next`: outstanding events are forgotten (as if acked), the journal read again from there. */
  async seek (next: number): Promise<void> {
    await this.#serial(async () => {
      const changes: StoreOp[] = []
      this.#book.clear()
      this.#book.flush(changes)
      this.state.next = next
      this.#ahead = []
      this.#aheadAt = 0
      this.#scanned = undefined
      this.#held = []
      changes.push(ops.subscription(this.state))
      await this.deps.store.write(changes)
      this.#listeners.call()
    })
  }

  /** Puts every dead letter back in the queue, due at once, as if never delivered; returns how many. */
  async replayDeadLetters (): Promise<number> {
    return await this.#serial(async () => {
      const now = this.deps.now()
      const changes: StoreOp[] = []
      const batch = this.#book.newBatch()
      for (const offset of this.state.deadLetters.keys()) {
        this.#book.set(offset, { deliveries: 0, deadline: now }, batch)
        changes.push(ops.dropDeadLetter(this.name, offset))
      }
      const replayed = this.state.deadLetters.size
      this.state.deadLetters.clear()
      this.#book.flush(changes)
      await this.deps.store.write(changes)
      if (replayed > 0) this.#listeners.call()
      return replayed
    })
  }

  /** A delivery that failed for now: due again in `delayMs` (a push retry). */
  async retryLater (ackId: string, delayMs: number): Promise<boolean> {
    return await this.#serial(async () => await this.#settle([ackId], (offset, lease) => {
      lease.deadline = this.deps.now() + delayMs
      this.#book.changed(offset)
    }) === 1)
  }

  /** A delivery that will never succeed (a push the endpoint refused with a 4xx): to the dead letters. */
  async deadLetter (ackId: string, reason: string): Promise<boolean> {
    return await this.#serial(async () => await this.#settle([ackId], (offset, lease, changes) => {
      this.#toDeadLetters(offset, lease.deliveries, reason, changes)
    }) === 1)
  }

  /** Stops a push subscription (its endpoint said 410 Gone), or starts it again (`undefined`). */
  async setDisabled (reason: string | undefined): Promise<void> {
    await this.#serial(async () => {
      if (reason === undefined) delete this.state.disabled
      else this.state.disabled = { reason, at: this.deps.now() }
      await this.deps.store.write([ops.subscription(this.state)])
    })
  }

  async #pull (max: number): Promise<Delivery[]> {
    const { spec } = this.state
    this.#pullBatch = undefined
    const now = this.deps.now()
    const oldestKept = now - spec.retentionMs
    const changes: StoreOp[] = []
    const out: Delivery[] = []
    if (spec.ordered) {
      // one in flight: nothing new while an event waits for its ack
      for (const lease of this.state.leases.values()) if (lease.deadline > now) return []
      max = 1
    }
    const due = [...this.state.leases].filter(([, lease]) => lease.deadline <= now).sort((a, b) => a[0] - b[0])
    for (const [offset, lease] of due) {
      if (out.length >= max) break
      if (lease.deliveries >= spec.maxDeliveries) {
        this.#toDeadLetters(offset, lease.deliveries, `not acked after ${lease.deliveries} deliveries (maxDeliveries)`, changes)
        continue
      }
      const [entry] = await this.deps.journal.read(offset, 1)
      if (entry === undefined || entry.offset !== offset || entry.timestamp < oldestKept) {
        this.#expire(offset)
        continue
      }
      out.push(this.#lease(entry, lease.deliveries + 1, now))
      if (lease.deliveries > 0) this.counters.redelivered++
    }
    // new events: from the entries read ahead (or taken from the live tail), then page by page
    this.#scanned = Math.max(this.#scanned ?? this.state.next, this.deps.journal.bounds().first)
    while (out.length < max) {
      if (this.#aheadAt === this.#ahead.length) {
        this.#ahead = []
        this.#aheadAt = 0
        // following the live tail, and past everything announced: the tail brings what comes next
        // (a read now would find entries committed and not yet announced, and run ahead of the tail)
        if (this.#scanned === this.#announced) break
        let page: JournalEntry[]
        // appends announced meanwhile are left to the next read: this one may return them too
        this.#reading = true
        try {
          page = await this.deps.journal.read(this.#scanned, PAGE)
        } finally {
          this.#reading = false
        }
        if (page.length > 0) {
          this.#scanned = page[page.length - 1]!.offset + 1
          const accepts = this.#filter.get()
          for (const entry of page) if (accepts(entry)) this.#ahead.push(entry)
        }
        const caughtUp = this.#takeHeld()
        if (page.length === 0 && !caughtUp) break
        continue
      }
      const entry = this.#ahead[this.#aheadAt++]!
      if (entry.timestamp >= oldestKept) out.push(this.#lease(entry, 1, now))
    }
    // what is kept is the first entry not handed out: those read ahead are read again after a restart
    this.state.next = this.#aheadAt < this.#ahead.length ? this.#ahead[this.#aheadAt]!.offset : this.#scanned
    // the cursor is written with what it handed out; a cursor that only moved past entries of
    // other topics is not (after a restart it would pass them again and find nothing in them)
    this.#book.flush(changes)
    if (changes.length > 0) {
      changes.push(ops.subscription(this.state))
      await this.deps.store.write(changes)
    }
    this.counters.delivered += out.length
    return out
  }

  /**
   * The appends announced while the pull read the journal: those the read reached are skipped,
   * and those that follow on from it (no gap) are taken as the live tail would have, so that a
   * read racing the appends does not leave the subscription behind, reading pages of
   * everybody's events to catch up. Returns whether it took any.
   */
  #takeHeld (): boolean {
    const held = this.#held
    this.#held = []
    let took = false
    for (const { from, to, mine } of held) {
      const scanned = this.#scanned!
      if (to < scanned) continue
      if (from > scanned || this.#ahead.length - this.#aheadAt >= AHEAD_MAX) break
      for (const entry of mine) if (entry.offset >= scanned) this.#ahead.push(entry)
      this.#scanned = to + 1
      took = true
    }
    return took
  }

  #lease (entry: JournalEntry, delivery: number, now: number): Delivery {
    this.#pullBatch ??= this.#book.newBatch()
    this.#book.set(entry.offset, { deliveries: delivery, deadline: now + this.state.spec.ackDeadlineMs }, this.#pullBatch)
    return { ackId: ackIdOf(entry.offset, delivery), delivery, entry }
  }

  #toDeadLetters (offset: number, deliveries: number, reason: string, changes: StoreOp[]): void {
    this.#book.drop(offset)
    const letter = { deliveries, reason, at: this.deps.now() }
    this.state.deadLetters.set(offset, letter)
    changes.push(ops.deadLetter(this.name, offset, letter))
    this.counters.deadLettered++
  }

  #expire (offset: number): void {
    this.#book.drop(offset)
    this.counters.expired++
  }

  /** Applies `settle` to each current delivery named, then writes the changes; returns how many. */
  async #settle (ackIds: readonly string[], settle: (offset: number, lease: Lease, changes: StoreOp[]) => void): Promise<number> {
    const changes: StoreOp[] = []
    let settled = 0
    for (const ackId of ackIds) {
      const id = parseAckId(ackId)
      const lease = id === undefined ? undefined : this.state.leases.get(id.offset)
      if (id === undefined || lease === undefined || lease.deliveries !== id.delivery) continue
      settle(id.offset, lease, changes)
      settled++
    }
    this.#book.flush(changes)
    await this.deps.store.write(changes)
    return settled
  }

  async #serial<T> (task: () => Promise<T>): Promise<T> {
    const run = this.#lane.then(task, task)
    this.#lane = run.catch(() => {})
    return await run
  }
}
