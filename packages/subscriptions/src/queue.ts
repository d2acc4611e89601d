import type { JournalEntry } from '@firehose/journal'
import type { SubscriptionCounters } from './counters.js'
import type { SubscriptionSpec } from './spec.js'
import type { DeadLetter } from './store.js'

/** One event handed out by a pull. */
export interface Delivery {
  ackId: string
  /** 1 for the first delivery */
  delivery: number
  entry: JournalEntry
}

/** What every subscription shows, wherever it is kept. */
export interface SubscriptionState {
  spec: SubscriptionSpec
  /** the next journal offset the subscription has not looked at */
  next: number
  /** a push subscription its endpoint turned away (410 Gone): nothing is pushed until it is enabled */
  disabled?: { reason: string, at: number }
}

/**
 * One subscription's queue over the journal: pulls lease events, acks settle them, an event not
 * acked by its deadline comes back, up to maxDeliveries, then goes to the dead letters. Kept on
 * the broker's disk (PullQueue) or, on a cluster node, in Redis where every node serves it
 * (RedisPullQueue). Every change is stored before the caller hears of it.
 */
export interface Queue {
  readonly state: SubscriptionState
  /** this node's figures since it started */
  readonly counters: SubscriptionCounters
  readonly name: string
  /** events pulled and not acked yet (on a cluster node: as of the last refresh) */
  readonly outstanding: number
  /** events in the dead letters (on a cluster node: as of the last refresh) */
  readonly deadLetterCount: number
  /** brings `outstanding`, `deadLetterCount`, `state.next` and `nextDeadline` up to date */
  refresh: () => Promise<void>
  /** the earliest deadline of a lease (ms), if any: when a waiting pull may find a redelivery */
  nextDeadline: () => number | undefined
  /** whether an entry is for this subscription (its filters, its owner's ACL) */
  accepts: (entry: JournalEntry) => boolean
  /**
   * An append the journal announced, offsets `first` to `last`, and of its entries those for
   * this subscription (the manager sorts them out once for every subscription: topic-index.ts)
   */
  announced: (first: number, last: number, mine: readonly JournalEntry[]) => void
  /** false when a pull would surely find nothing (nothing read ahead, due, or unread): a push worker does not ask */
  mayHaveEvents: () => boolean
  /** calls `listener` when events for this subscription may be there to pull; returns the stop */
  onNew: (listener: () => void) => () => void
  /** tells the listeners to look again (a seek or a replay made elsewhere) */
  wake: () => void
  close: () => void
  /** up to `max` events: due redeliveries first, then new ones in journal order */
  pull: (max: number) => Promise<Delivery[]>
  /** how many acked something (a stale or repeated ack id acks nothing) */
  ack: (ackIds: readonly string[]) => Promise<number>
  /** hands deliveries back, due again at once */
  nack: (ackIds: readonly string[]) => Promise<number>
  /** goes on from `next`: outstanding events are forgotten */
  seek: (next: number) => Promise<void>
  /** puts every dead letter back in the queue, due at once; returns how many */
  replayDeadLetters: () => Promise<number>
  /** the dead letters by offset, oldest first */
  deadLetters: () => Promise<Array<[number, DeadLetter]>>
  /** a delivery that failed for now: due again in `delayMs` (a push retry) */
  retryLater: (ackId: string, delayMs: number) => Promise<boolean>
  /** a delivery that will never succeed (a push refused with a 4xx): to the dead letters */
  deadLetter: (ackId: string, reason: string) => Promise<boolean>
  /** stops a push subscription (410 Gone), or starts it again (`undefined`) */
  setDisabled: (reason: string | undefined) => Promise<void>
}

/**
 * Who hears that a subscription may have events to pull: a push worker, waiting pulls. Shared
 * by both kinds of queue.
 */
export class Listeners {
  readonly #listeners = new Set<() => void>()

  add (listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  call (): void {
    for (const listener of this.#listeners) listener()
  }

  clear (): void {
    this.#listeners.clear()
  }
}
