import type { Journal, JournalEntry } from '@firehose/journal'
import { PullQueue } from './pull-queue.js'
import type { StartAt, SubscriptionRequest, SubscriptionSpec } from './spec.js'
import { ops, type SubscriptionStore } from './store.js'

export interface SubscriptionsDeps {
  journal: Journal
  store: SubscriptionStore
  /** ms since the epoch */
  now?: () => number
  /** the entries `owner` gets on `topics`: the filters, then that user's read ACL as it stands (the broker's rules) */
  filterFor: (owner: string, topics: readonly string[]) => (entry: JournalEntry) => boolean
  /** users who see and manage every subscription */
  admins: ReadonlySet<string>
}

/** A request about subscriptions the API refuses, with its HTTP status. */
export class SubscriptionError extends Error {
  constructor (readonly status: 404 | 409, message: string) {
    super(message)
  }
}

/**
 * Every subscription of the broker, by name (one namespace: a name is taken once), each owned
 * by the user who created it. A user sees and manages only their own; another user's is "not
 * found", never a hint that it exists. Admins see all.
 */
export class Subscriptions {
  readonly #queues = new Map<string, PullQueue>()
  readonly #now: () => number

  private constructor (private readonly deps: SubscriptionsDeps) {
    this.#now = deps.now ?? Date.now
  }

  static async open (deps: SubscriptionsDeps): Promise<Subscriptions> {
    const subscriptions = new Subscriptions(deps)
    for (const state of await deps.store.loadAll()) subscriptions.#queues.set(state.spec.name, subscriptions.#queue(state))
    return subscriptions
  }

  async create (owner: string, request: SubscriptionRequest): Promise<PullQueue> {
    const { name } = request.spec
    if (this.#queues.has(name)) throw new SubscriptionError(409, `name: a subscription "${name}" exists (names are unique on the broker)`)
    const spec: SubscriptionSpec = { ...request.spec, owner, created: this.#now() }
    const next = await this.startOffset(request.startAt)
    // taken before the write, so that two creations of one name cannot both pass
    const queue = this.#queue({ spec, next, leases: new Map(), deadLetters: new Map() })
    this.#queues.set(name, queue)
    try {
      await this.deps.store.write([ops.subscription(spec, next)])
    } catch (err) {
      this.#queues.delete(name)
      throw err
    }
    return queue
  }

  /** The subscriptions `user` may see, by name. */
  list (user: string): PullQueue[] {
    return [...this.#queues.values()].filter(queue => this.#mayManage(user, queue)).sort((a, b) => a.name.localeCompare(b.name))
  }

  /** `user`'s subscription `name` (or any, for an admin); 404 otherwise. */
  get (user: string, name: string): PullQueue {
    const queue = this.#queues.get(name)
    if (queue === undefined || !this.#mayManage(user, queue)) throw new SubscriptionError(404, `no subscription "${name}"`)
    return queue
  }

  async delete (user: string, name: string): Promise<void> {
    this.get(user, name)
    this.#queues.delete(name)
    await this.deps.store.write(await this.deps.store.deleteOps(name))
  }

  /** Where a start lands in the journal: the offset of the first event to consider. */
  async startOffset (start: StartAt): Promise<number> {
    const { first, last } = this.deps.journal.bounds()
    if ('from' in start) return start.from === 'now' ? last + 1 : first
    if ('offset' in start) return Math.max(start.offset, first)
    return await this.deps.journal.offsetAt(start.timestamp)
  }

  /** Every subscription, for metrics. */
  all (): PullQueue[] {
    return [...this.#queues.values()]
  }

  async close (): Promise<void> {
    await this.deps.store.close()
  }

  #mayManage (user: string, queue: PullQueue): boolean {
    return queue.state.spec.owner === user || this.deps.admins.has(user)
  }

  #queue (state: PullQueue['state']): PullQueue {
    return new PullQueue(state, { journal: this.deps.journal, store: this.deps.store, now: this.#now, filter: () => this.deps.filterFor(state.spec.owner, state.spec.topics) })
  }
}
