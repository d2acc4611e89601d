import type { Journal, JournalEntry } from '@firehose/journal'
import type { Queue, SubscriptionState } from './queue.js'

/** What a queue needs besides its state: the journal it reads, the clock, its filter. */
export interface QueueDeps {
  journal: Journal
  /** ms since the epoch */
  now: () => number
  /** the subscription's filters and its owner's read ACL as they stand (made anew now and then: the ACL may be reloaded) */
  filter: () => (entry: JournalEntry) => boolean
}

/**
 * Where subscriptions are kept: the broker's own LevelDB (SubscriptionStore), or Redis on a
 * cluster node (RedisSubscriptionStore), shared by every node.
 */
export interface SubscriptionBackend {
  /** every subscription as kept now */
  loadAll: () => Promise<SubscriptionState[]>
  /** the queue of a subscription kept here */
  queue: (state: SubscriptionState, deps: QueueDeps) => Queue
  /** keeps a new subscription; false if its name is taken (on a cluster: by any node) */
  create: (state: SubscriptionState) => Promise<boolean>
  /** forgets a subscription and everything it holds */
  remove: (name: string) => Promise<void>
  close: () => Promise<void>
  /** set where other nodes share the subscriptions */
  readonly shared?: SharedCoordination
}

/** How the nodes of a cluster keep in step over the subscriptions they share. */
export interface SharedCoordination {
  /** moves whenever a node should look again (created, deleted, disabled, sought, replayed) */
  version: () => Promise<string>
  /** takes or keeps the right to push a subscription (one node at a time); true if this node has it */
  holdWorker: (name: string) => Promise<boolean>
  /** lets it go (this node stops pushing it) */
  releaseWorker: (name: string) => Promise<void>
}
