import { randomBytes } from 'node:crypto'
import type { Journal, JournalEntry } from '@firehose/journal'
import type { EventTotals } from './counters.js'
import { PullQueue } from './pull-queue.js'
import type { PushSender } from './push-sender.js'
import { PushWorker } from './push-worker.js'
import type { StartAt, SubscriptionRequest, SubscriptionSpec } from './spec.js'
import { ops, type SubscriptionStore } from './store.js'

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
  store: SubscriptionStore
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

/** A request about subscriptions the API refuses, with its HTTP status. */
export class SubscriptionError extends Error {
  constructor (readonly status: 400 | 404 | 409, message: string) {
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
  readonly #workers = new Map<string, PushWorker>()
  /** event_triggered, event_lost, store_ok, store_fail */
  readonly totals: EventTotals = { eventTriggered: 0, eventLost: 0, storeOk: 0, storeFailed: 0 }
  #unsubscribe: () => void = () => {}
  /** open readers of stream subscriptions, by name: closed when the subscription is deleted */
  readonly #streamReaders = new Map<string, Set<() => void>>()
  readonly #now: () => number

  private constructor (private readonly deps: SubscriptionsDeps) {
    this.#now = deps.now ?? Date.now
  }

  static async open (deps: SubscriptionsDeps): Promise<Subscriptions> {
    const subscriptions = new Subscriptions(deps)
    subscriptions.#unsubscribe = deps.journal.onAppended(entries => { subscriptions.#appended(entries) })
    for (const state of await deps.store.loadAll()) {
      const queue = subscriptions.#queue(state)
      subscriptions.#queues.set(state.spec.name, queue)
      subscriptions.#startPushing(queue)
    }
    return subscriptions
  }

  async create (owner: string, request: SubscriptionRequest): Promise<PullQueue> {
    const { name } = request.spec
    if (this.#queues.has(name)) throw new SubscriptionError(409, `name: a subscription "${name}" exists (names are unique on the broker)`)
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
    if (this.#queues.has(name)) throw new SubscriptionError(409, `name: a subscription "${name}" exists (names are unique on the broker)`)
    // taken before the write, so that two creations of one name cannot both pass
    const queue = this.#queue({ spec, next, leases: new Map(), deadLetters: new Map() })
    this.#queues.set(name, queue)
    try {
      await this.deps.store.write([ops.subscription(queue.state)])
    } catch (err) {
      this.#queues.delete(name)
      queue.close()
      throw err
    }
    this.#startPushing(queue)
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

  /** One announcement of the journal, handed to every subscription; the totals counted on the way. */
  #appended (entries: readonly JournalEntry[]): void {
    if (this.#queues.size === 0) return
    const matched = new Uint8Array(entries.length)
    for (const queue of this.#queues.values()) this.totals.storeOk += queue.appended(entries, matched)
    for (const m of matched) this.totals.eventTriggered += m
  }

  /** Starts pushing again after the endpoint said 410 Gone (the owner has fixed it). */
  async enable (user: string, name: string): Promise<PullQueue> {
    const queue = this.get(user, name)
    if (queue.state.disabled !== undefined) {
      await queue.setDisabled(undefined)
      this.#startPushing(queue)
    }
    return queue
  }

  /** The stream subscription whose location holds `id`, if any. */
  byStreamId (id: string): PullQueue | undefined {
    for (const queue of this.#queues.values()) if (queue.state.spec.stream?.id === id) return queue
    return undefined
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

  /** POSTs in flight for a push subscription (0 for pull). */
  pushing (name: string): number {
    return this.#workers.get(name)?.inflight ?? 0
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
    const queue = this.get(user, name)
    this.#queues.delete(name)
    await this.#stopPushing(name)
    queue.close()
    for (const close of this.#streamReaders.get(name) ?? []) close()
    this.#streamReaders.delete(name)
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
    this.#unsubscribe()
    await Promise.all([...this.#workers.keys()].map(async name => { await this.#stopPushing(name) }))
    this.deps.push?.sender.close()
    for (const queue of this.#queues.values()) queue.close()
    await this.deps.store.close()
  }

  #startPushing (queue: PullQueue): void {
    const { push } = this.deps
    if (push === undefined || queue.state.spec.push === undefined || queue.state.disabled !== undefined || this.#workers.has(queue.name)) return
    const worker = new PushWorker(queue, {
      send: async (delivery, spec) => await push.sender.send(delivery, spec),
      retrySchedule: push.retrySchedule,
      concurrency: queue.state.spec.ordered ? 1 : push.concurrency,
      onError: err => { this.deps.log('error', 'subscriptions.push-failed', { subscription: queue.name, err: err.message }, 'push worker: a pull or a write failed; trying again') },
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

  #mayManage (user: string, queue: PullQueue): boolean {
    return queue.state.spec.owner === user || this.deps.admins.has(user)
  }

  #queue (state: PullQueue['state']): PullQueue {
    return new PullQueue(state, { journal: this.deps.journal, store: this.deps.store, now: this.#now, filter: () => this.deps.filterFor(state.spec.owner, state.spec.topics) })
  }
}
