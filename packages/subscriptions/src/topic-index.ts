import type { JournalEntry } from '@firehose/journal'
import type { Queue } from './queue.js'

/** ms an answer is kept: a reloaded ACL, or a subscription made or deleted, applies within this */
const INDEX_TTL_MS = 1000
/** topics remembered at most (a bus of ever-new topics starts afresh rather than grow) */
const REMEMBERED_TOPICS = 10_000

/**
 * Which subscriptions each topic goes to, worked out once per topic (and again each second, or
 * when the subscriptions change) instead of by every subscription for every appended entry:
 * with a hundred subscriptions and a busy bus, asking each of them about each entry cost the
 * MQTT fan-out more than the pushes did.
 */
export class TopicIndex {
  #byTopic = new Map<string, readonly Queue[]>()
  #made = 0

  constructor (private readonly queues: () => Iterable<Queue>) {}

  /** The subscriptions changed: answers are worked out again. */
  clear (): void {
    this.#byTopic = new Map()
  }

  /** The subscriptions an entry goes to. */
  of (entry: JournalEntry): readonly Queue[] {
    const now = performance.now()
    if (now - this.#made > INDEX_TTL_MS || this.#byTopic.size >= REMEMBERED_TOPICS) {
      this.#byTopic = new Map()
      this.#made = now
    }
    let found = this.#byTopic.get(entry.topic)
    if (found === undefined) {
      const matching: Queue[] = []
      for (const queue of this.queues()) if (queue.accepts(entry)) matching.push(queue)
      this.#byTopic.set(entry.topic, found = matching)
    }
    return found
  }
}
