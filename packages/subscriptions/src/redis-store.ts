import type { Redis } from 'ioredis'
import type { QueueDeps, SharedCoordination, SubscriptionBackend } from './backend.js'
import type { SubscriptionState } from './queue.js'
import { RedisPullQueue } from './redis-queue.js'
import { CLAIM_DUE, CREATE, DELETE, HOLD_LOCK, RELEASE_LOCK, REPLAY_DEAD, SEEK, SET_DISABLED, SETTLE, TAKE_NEW } from './redis-scripts.js'

/** ms a node holds the right to push a subscription without renewing it: how long a dead node's subscriptions wait */
export const WORKER_LOCK_MS = 5000

/** The keys of one subscription, and the shared ones. */
export interface SubscriptionKeys {
  index: string
  version: string
  state: string
  due: string
  n: string
  dead: string
}

type Script = (...args: Array<string | number>) => Promise<unknown>
const SCRIPTS = { CLAIM_DUE, TAKE_NEW, SETTLE, SEEK, REPLAY_DEAD, SET_DISABLED, CREATE, DELETE, HOLD_LOCK, RELEASE_LOCK }
export type ScriptName = keyof typeof SCRIPTS

export interface RedisSubscriptionStoreOptions {
  /** commands (the node's persistence connection) */
  db: Redis
  /** this node, as it holds push workers: unique per run */
  node: string
  /** key prefix (default `firehose:subscriptions`) */
  key?: string
}

/**
 * Subscriptions on Redis, shared by every node of a cluster: the specs in one hash, each
 * subscription's cursor, leases and dead letters in keys of its own, changed only by the Lua
 * scripts of redis-scripts.ts. Any node serves any subscription; one node at a time pushes each
 * push subscription (a lock it renews; when it dies another takes over).
 */
export class RedisSubscriptionStore implements SubscriptionBackend {
  readonly #db: Redis
  readonly #prefix: string
  readonly #node: string
  readonly shared: SharedCoordination

  constructor (options: RedisSubscriptionStoreOptions) {
    this.#db = options.db
    this.#prefix = options.key ?? 'firehose:subscriptions'
    this.#node = options.node
    for (const [name, lua] of Object.entries(SCRIPTS)) this.#db.defineCommand(`firehoseSubscriptions${name}`, { lua })
    this.shared = {
      version: async () => (await this.#db.get(`${this.#prefix}:version`)) ?? '0',
      holdWorker: async name => Number(await this.run('HOLD_LOCK', [this.#lockKey(name)], this.#node, WORKER_LOCK_MS)) === 1,
      releaseWorker: async name => { await this.run('RELEASE_LOCK', [this.#lockKey(name)], this.#node) }
    }
  }

  keys (name: string): SubscriptionKeys {
    const state = `${this.#prefix}:sub:${name}`
    return { index: `${this.#prefix}:index`, version: `${this.#prefix}:version`, state, due: `${state}:due`, n: `${state}:n`, dead: `${state}:dead` }
  }

  /** Runs one of the scripts with its keys and arguments. */
  async run (script: ScriptName, keys: readonly string[], ...args: Array<string | number>): Promise<unknown> {
    return await (this.#db as unknown as Record<string, Script>)[`firehoseSubscriptions${script}`]!(keys.length, ...keys, ...args)
  }

  get db (): Redis {
    return this.#db
  }

  async loadAll (): Promise<SubscriptionState[]> {
    const specs = await this.#db.hgetall(`${this.#prefix}:index`)
    const names = Object.keys(specs)
    const pipeline = this.#db.pipeline()
    for (const name of names) pipeline.hmget(this.keys(name).state, 'next', 'disabled')
    const states = (await pipeline.exec()) ?? []
    return names.map((name, i) => {
      const [err, fields] = states[i] as [Error | null, Array<string | null>]
      if (err !== null) throw err
      const disabled = fields[1] ?? undefined
      return { spec: JSON.parse(specs[name]!), next: Number(fields[0] ?? 0), ...(disabled === undefined ? {} : { disabled: JSON.parse(disabled) }) }
    })
  }

  queue (state: SubscriptionState, deps: QueueDeps): RedisPullQueue {
    return new RedisPullQueue(state, { ...deps, store: this })
  }

  async create (state: SubscriptionState): Promise<boolean> {
    const k = this.keys(state.spec.name)
    return Number(await this.run('CREATE', [k.index, k.state, k.due, k.n, k.dead, k.version], state.spec.name, JSON.stringify(state.spec), String(state.next))) === 1
  }

  async remove (name: string): Promise<void> {
    const k = this.keys(name)
    await this.run('DELETE', [k.index, k.state, k.due, k.n, k.dead, k.version], name)
    await this.#db.del(this.#lockKey(name))
  }

  /** The connection belongs to the node's cluster backends, which close it. */
  async close (): Promise<void> {}

  /**
   * The default push signing key of the cluster: made by the first node that needs it and kept
   * in Redis, so that every node signs with the key every node publishes.
   */
  async sharedSigningKey (make: () => string): Promise<string> {
    const key = `${this.#prefix}:signing-key`
    await this.#db.set(key, make(), 'NX')
    const pem = await this.#db.get(key)
    if (pem === null) throw new Error(`${key} vanished from Redis`)
    return pem
  }

  #lockKey (name: string): string {
    return `${this.#prefix}:worker:${name}`
  }
}
