import { randomBytes } from 'node:crypto'
import type { Journal, JournalEntry } from '@firehose/journal'
import type { SubscriptionBackend } from './backend.js'
import type { EventTotals } from './counters.js'
import { SubscriptionError } from './errors.js'
import type { PushSender } from './push-sender.js'
import { PushWorker } from './push-worker.js'
import type { Queue, SubscriptionState } from './queue.js'
import { TopicIndex } from './topic-index.js'
import type { StartAt, SubscriptionRequest, SubscriptionSpec } from './spec.js'

export { SubscriptionError } from './errors.js'

/** How push subscriptions deliver, when the broker pushes at all. */
export interface PushDeps {
  sender: PushSender
  /** ms before each retry; an event goes to the dead letters after one attempt more than it has steps */
  retrySchedule: readonly number[]
  /** POSTs in flight per subscription */
  concurrency: number
  /** whether the operator lets subscriptions push to this URL: undefined, or why not */
  refuseEndpoint: (url: string) => string | undefined
}

/** Deliveries of one event, when the request leaves it out. */
export const DEFAULT_MAX_DELIVERIES = 10

export interface SubscriptionsDeps {
  journal: Journal
  /** the broker's own LevelDB (SubscriptionStore), or Redis shared by a cluster's nodes (RedisSubscriptionStore) */
  store: SubscriptionBackend
  /** ms since the epoch */
  now?: () => number
  /** the entries `owner` gets on `topics`: the filters, then that user's read ACL as it stands (the broker's rules) */
  filterFor: (owner: string, topics: readonly string[]) => (entry: JournalEntry) => boolean
  /** users who see and manage every subscription */
  admins: ReadonlySet<string>
  /** none: push subscriptions are refused */
  push?: PushDeps
  /** what went wrong in the background (a push worker's pull or write), and a subscription disabled */
  log: (level: 'warn' | 'error', event: string, fields: Record<string, unknown>, message: string) => void
}

/** ms between a cluster node's looks at the subscriptions the nodes share (created, deleted, pushed elsewhere) */
export const SYNC_MS = 1000

/**
 * Every subscription of the broker, by name (one namespace: a name is taken once), each owned
 * by the user who created it. A user sees and manages only their own; another user's is "not
 * found", never a hint that it exists. Admins see all.
 *
 * On a cluster node the subscriptions live in Redis, shared by every node: each node keeps a
 * copy of the list, looked at again every SYNC_MS (and at once when asked for a name it does not
 * know), and pushes only the subscriptions whose worker lock it holds.
 */
export class Subscriptions {
  readonly #queues = new Map<string, Queue>()
  readonly #workers = new Map<string, PushWorker>()
  /** event_triggered, event_lost, store_ok, store_fail */
  readonly totals: EventTotals = { eventTriggered: 0, eventLost: 0, storeOk: 0, storeFailed: 0 }
  #unsubscribe: () => void = () => {}
  /** open readers of stream subscriptions, by name: closed when the subscription is deleted */
  readonly #streamReaders = new Map<string, Set<() => void>>()
  readonly #now: () => number
  /** which subscriptions each topic goes to */
  readonly #index = new TopicIndex(() => this.#queues.values())
  /** cluster: the shared list's version this node last loaded, the look under way, its timer */
  #version: string | undefined
  #syncing: Promise<void> | undefined
  #timer: NodeJS.Timeout | undefined
  #closed = false

  private constructor (private readonly deps: SubscriptionsDeps) {
    this.#now = deps.now ?? Date.now
  }

  static async open (deps: SubscriptionsDeps): Promise<Subscriptions> {
    const subscriptions = new Subscriptions(deps)
    subscriptions.#unsubscribe = deps.journal.onAppended(entries => { subscriptions.#appended(entries) })
    if (deps.store.shared === undefined) {
      for (const state of await deps.store.loadAll()) {
        const queue = subscriptions.#queue(state)
        subscriptions.#queues.set(state.spec.name, queue)
        subscriptions.#index.clear()
        subscriptions.#startPushing(queue)
      }
    } else {
      await subscriptions.sync()
      subscriptions.#timer = setInterval(() => { subscriptions.sync().catch(err => { subscriptions.#logFailure('subscriptions.sync-failed', SYNC_FAILED, err as Error) }) }, SYNC_MS)
      subscriptions.#timer.unref()
    }
    return subscriptions
  }

  async create (owner: string, request: SubscriptionRequest): Promise<Queue> {
    const { name } = request.spec
    if (this.#queues.has(name)) throw taken(name)
    const { push: pushRequest, maxDeliveries, ...rest } = request.spec
    let push: SubscriptionSpec['push']
    if (pushRequest !== undefined) {
      if (this.deps.push === undefined) throw new SubscriptionError(400, 'type: this broker does not push (subscriptions.push: false)')
      const refused = this.deps.push.refuseEndpoint(pushRequest.endpoint)
      if (refused !== undefined) throw new SubscriptionError(400, `push.endpoint: ${refused}`)
      // the Standard Webhooks form: whsec_ and the base64 of the key's bytes
      push = { ...pushRequest, secret: `whsec_${randomBytes(24).toString('base64')}` }
    }
    const spec: SubscriptionSpec = {
      ...rest,
      ...(push === undefined ? {} : { push }),
      // a capability: whoever holds it reads the stream, so it is as hard to guess as a key
      ...(rest.type === 'stream' ? { stream: { id: randomBytes(18).toString('base64url') } } : {}),
      maxDeliveries: maxDeliveries ?? (push === undefined ? DEFAULT_MAX_DELIVERIES : this.deps.push!.retrySchedule.length + 1),
      owner,
      created: this.#now()
    }
    const next = await this.startOffset(request.startAt)
    if (this.#queues.has(name)) throw taken(name)
    // taken before the write, so that two creations of one name on this node cannot both pass
    // (on a cluster, the store refuses a name another node took)
    const queue = this.#queue({ spec, next })
    this.#queues.set(name, queue)
    this.#index.clear()
    let created = false
    try {
      created = await this.deps.store.create(queue.state)
    } finally {
      if (!created) {
        this.#queues.delete(name)
        this.#index.clear()
        queue.close()
      }
    }
    if (!created) throw taken(name)
    if (this.deps.store.shared === undefined) this.#startPushing(queue)
    else this.sync().catch(err => { this.#logFailure('subscriptions.sync-failed', SYNC_FAILED, err as Error) })
    return queue
  }

  /** An event the journal could not take: counted against the subscriptions it would have reached. */
  appendFailed (topic: string): void {
    const entry = { offset: 0, timestamp: this.#now(), topic, payload: Buffer.alloc(0), qos: 0 as const, retain: false }
    let would = 0
    for (const queue of this.#queues.values()) if (queue.accepts(entry)) would++
    this.totals.storeFailed += would
    if (would > 0) this.totals.eventLost++
  }

  /**
   * One announcement of the journal: each subscription gets its own entries of it (sorted out by
   * topic, once for all of them) and hears of the rest; the totals counted on the way.
   */
  #appended (entries: readonly JournalEntry[]): void {
    if (this.#queues.size === 0) return
    // made only for an announcement with entries for some subscription (most, on a busy bus, have none)
    let mine: Map<Queue, JournalEntry[]> | undefined
    for (const entry of entries) {
      const queues = this.#index.of(entry)
      if (queues.length === 0) continue
      this.totals.eventTriggered++
      this.totals.storeOk += queues.length
      mine ??= new Map()
      for (const queue of queues) {
        const list = mine.get(queue)
        if (list === undefined) mine.set(queue, [entry])
        else list.push(entry)
      }
    }
    const first = entries[0]!.offset
    const last = entries[entries.length - 1]!.offset
    for (const queue of this.#queues.values()) queue.announced(first, last, mine?.get(queue) ?? NONE)
  }

  /** Starts pushing again after the endpoint said 410 Gone (the owner has fixed it). */
  async enable (user: string, name: string): Promise<Queue> {
    const queue = await this.get(user, name)
    if (queue.state.disabled !== undefined) {
      await queue.setDisabled(undefined)
      if (this.deps.store.shared === undefined) this.#startPushing(queue)
      else await this.sync()
    }
    return queue
  }

  /** The stream subscription whose location holds `id`, if any. */
  async byStreamId (id: string): Promise<Queue | undefined> {
    const find = (): Queue | undefined => {
      for (const queue of this.#queues.values()) if (queue.state.spec.stream?.id === id) return queue
      return undefined
    }
    const found = find()
    if (found !== undefined || this.deps.store.shared === undefined) return found
    // made on another node a moment ago, perhaps
    await this.sync()
    return find()
  }

  /** Registers an open reader of a stream subscription; `close` ends it if the subscription is deleted. Returns the release. */
  attachStreamReader (name: string, close: () => void): () => void {
    let readers = this.#streamReaders.get(name)
    if (readers === undefined) this.#streamReaders.set(name, readers = new Set())
    readers.add(close)
    return () => {
      readers.delete(close)
      if (readers.size === 0 && this.#streamReaders.get(name) === readers) this.#streamReaders.delete(name)
    }
  }

  /** The push signing keys' public halves, for /.well-known/jwks.json (none when the broker does not push). */
  jwks (): { keys: unknown[] } | undefined {
    return this.deps.push?.sender.jwks()
  }

  /** POSTs in flight for a push subscription on this node (0 for pull, and where another node pushes it). */
  pushing (name: string): number {
    return this.#workers.get(name)?.inflight ?? 0
  }

  /** The subscriptions `user` may see, by name. */
  list (user: string): Queue[] {
    return [...this.#queues.values()].filter(queue => this.#mayManage(user, queue)).sort((a, b) => a.name.localeCompare(b.name))
  }

  /** `user`'s subscription `name` (or any, for an admin); 404 otherwise. */
  async get (user: string, name: string): Promise<Queue> {
    let queue = this.#queues.get(name)
    if (queue === undefined && this.deps.store.shared !== undefined) {
      // made on another node a moment ago, perhaps
      await this.sync()
      queue = this.#queues.get(name)
    }
    if (queue === undefined || !this.#mayManage(user, queue)) throw new SubscriptionError(404, `no subscription "${name}"`)
    return queue
  }

  async delete (user: string, name: string): Promise<void> {
    await this.get(user, name)
    await this.#forget(name)
    await this.deps.store.remove(name)
  }

  /** Where a start lands in the journal: the offset of the first event to consider. */
  async startOffset (start: StartAt): Promise<number> {
    const { first, last } = this.deps.journal.bounds()
    if ('from' in start) return start.from === 'now' ? last + 1 : first
    if ('offset' in start) return Math.max(start.offset, first)
    return await this.deps.journal.offsetAt(start.timestamp)
  }

  /** Every subscription, for metrics. */
  all (): Queue[] {
    return [...this.#queues.values()]
  }

  /**
   * Cluster: brings this node's list in step with the shared one (subscriptions made, deleted,
   * disabled or sought elsewhere), refreshes each one's figures, and takes, keeps or lets go the
   * push workers. One look at a time; a call during one waits for it and makes another.
   */
  async sync (): Promise<void> {
    const running = this.#syncing
    const next = (async () => {
      await running?.catch(() => {})
      if (!this.#closed) await this.#sync()
    })()
    this.#syncing = next
    try {
      await next
    } finally {
      if (this.#syncing === next) this.#syncing = undefined
    }
  }

  async #sync (): Promise<void> {
    const shared = this.deps.store.shared!
    const version = await shared.version()
    if (version !== this.#version) {
      const states = await this.deps.store.loadAll()
      const seen = new Set<string>()
      for (const state of states) {
        seen.add(state.spec.name)
        const known = this.#queues.get(state.spec.name)
        if (known === undefined) {
          this.#queues.set(state.spec.name, this.#queue(state))
          this.#index.clear()
          continue
        }
        if (state.disabled === undefined) delete known.state.disabled
        else known.state.disabled = state.disabled
        // sought or replayed elsewhere: whoever waits on it looks again
        known.wake()
      }
      for (const name of [...this.#queues.keys()]) if (!seen.has(name)) await this.#forget(name)
      this.#version = version
    }
    await Promise.all([...this.#queues.values()].map(async queue => { await queue.refresh() }))
    if (this.deps.push === undefined) return
    for (const queue of this.#queues.values()) {
      if (queue.state.spec.push === undefined) continue
      const wanted = queue.state.disabled === undefined && await shared.holdWorker(queue.name)
      if (wanted) this.#startPushing(queue)
      else if (this.#workers.has(queue.name)) {
        await this.#stopPushing(queue.name)
        await shared.releaseWorker(queue.name)
      }
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    clearInterval(this.#timer)
    await this.#syncing?.catch(() => {})
    this.#unsubscribe()
    await Promise.all([...this.#workers.keys()].map(async name => {
      await this.#stopPushing(name)
      // another node takes it over at once, not after the lock runs out
      await this.deps.store.shared?.releaseWorker(name).catch(() => {})
    }))
    this.deps.push?.sender.close()
    for (const queue of this.#queues.values()) queue.close()
    await this.deps.store.close()
  }

  /** Stops serving a subscription on this node: its worker, its waiting readers, its stream readers. */
  async #forget (name: string): Promise<void> {
    const queue = this.#queues.get(name)
    this.#queues.delete(name)
    this.#index.clear()
    await this.#stopPushing(name)
    queue?.close()
    for (const close of this.#streamReaders.get(name) ?? []) close()
    this.#streamReaders.delete(name)
  }

  #startPushing (queue: Queue): void {
    const { push } = this.deps
    if (push === undefined || queue.state.spec.push === undefined || queue.state.disabled !== undefined || this.#workers.has(queue.name)) return
    const worker = new PushWorker(queue, {
      send: async (delivery, spec) => await push.sender.send(delivery, spec),
      retrySchedule: push.retrySchedule,
      concurrency: queue.state.spec.ordered ? 1 : push.concurrency,
      onError: err => {
        // deleted on another node: the next look stops this worker
        if (err instanceof SubscriptionError && err.status === 404) return
        this.#logFailure('subscriptions.push-failed', 'push worker: a pull or a write failed; trying again', err, queue.name)
      },
      onDisabled: reason => {
        this.#workers.delete(queue.name)
        this.deps.log('warn', 'subscriptions.push-disabled', { subscription: queue.name, reason }, 'push subscription disabled: its endpoint is gone')
      }
    })
    this.#workers.set(queue.name, worker)
  }

  async #stopPushing (name: string): Promise<void> {
    const worker = this.#workers.get(name)
    this.#workers.delete(name)
    await worker?.stop()
  }

  #logFailure (event: string, message: string, err: Error, subscription?: string): void {
    this.deps.log('error', event, { ...(subscription === undefined ? {} : { subscription }), err: err.message }, message)
  }

  #mayManage (user: string, queue: Queue): boolean {
    return queue.state.spec.owner === user || this.deps.admins.has(user)
  }

  #queue (state: SubscriptionState): Queue {
    return this.deps.store.queue(state, { journal: this.deps.journal, now: this.#now, filter: () => this.deps.filterFor(state.spec.owner, state.spec.topics) })
  }
}

const NONE: readonly JournalEntry[] = []
const SYNC_FAILED = 'subscriptions: cannot look at the shared list in Redis; trying again'

const taken = (name: string): SubscriptionError => new SubscriptionError(409, `name: a subscription "${name}" exists (names are unique on the broker)`)
