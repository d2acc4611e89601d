import type { ClassicLevel } from 'classic-level'
import { openLevelStore } from '@firehose/runtime'
import type { QueueDeps, SubscriptionBackend } from './backend.js'
import { PullQueue } from './pull-queue.js'
import type { SubscriptionState } from './queue.js'

/** A pulled event not acked yet: delivered `deliveries` times, due again at `deadline` (ms). */
export interface Lease {
  deliveries: number
  deadline: number
  /** the record it is kept in (lease-book.ts); in memory only */
  batch?: number
}

/** An event given up on: why, after how many deliveries, when (ms). */
export interface DeadLetter {
  deliveries: number
  reason: string
  at: number
}

/** A subscription as kept on the broker's disk: its state, its leases and dead letters. */
export interface StoredSubscription extends SubscriptionState {
  leases: Map<number, Lease>
  deadLetters: Map<number, DeadLetter>
}

export type StoreOp = { type: 'put', key: string, value: string } | { type: 'del', key: string }

// `s!name` -> { spec, next }; `l!name!batch` -> [[offset, deliveries, deadline], ...] (the
// leases of one pull: lease-book.ts; before batches, `l!name!offset` -> { deliveries, deadline });
// `d!name!offset` -> DeadLetter. Names never hold "!" (spec.ts NAME), numbers are zero-padded so
// key order is numeric order.
const pad = (offset: number): string => String(offset).padStart(16, '0')
const specKey = (name: string): string => `s!${name}`
const leaseKey = (name: string, batch: number): string => `l!${name}!${pad(batch)}`
const deadKey = (name: string, offset: number): string => `d!${name}!${pad(offset)}`

/**
 * The subscriptions' LevelDB: every change to one subscription is one atomic batch, and the
 * changes asked for while a write is under way go out together in the next one (group commit:
 * a push worker acks each event on its own, and a write per ack cost more than the POST).
 */
export class SubscriptionStore implements SubscriptionBackend {
  #waiting: Array<{ ops: StoreOp[], resolve: () => void, reject: (err: Error) => void }> = []
  /** the writes under way, until nothing waits (settled: none) */
  #writing: Promise<void> | undefined

  private constructor (private readonly db: ClassicLevel<string, string>) {}

  static async open (dir: string, options: { key?: string, source?: string } = {}): Promise<SubscriptionStore> {
    return new SubscriptionStore(await openLevelStore<string>(dir, 'utf8', { key: options.key ?? 'subscriptions.dir', user: 'broker', source: options.source ?? 'subscriptions' }))
  }

  async loadAll (): Promise<StoredSubscription[]> {
    const byName = new Map<string, StoredSubscription>()
    for (const [key, value] of await this.db.iterator({ gte: 's!', lt: 's"' }).all()) {
      const { spec, next, disabled } = JSON.parse(value) as SubscriptionState
      byName.set(key.slice(2), { spec, next, ...(disabled === undefined ? {} : { disabled }), leases: new Map(), deadLetters: new Map() })
    }
    for (const [prefix, field] of [['l!', 'leases'], ['d!', 'deadLetters']] as const) {
      for (const [key, value] of await this.db.iterator({ gte: prefix, lt: prefix.slice(0, 1) + '"' }).all()) {
        const bang = key.lastIndexOf('!')
        const subscription = byName.get(key.slice(2, bang))
        // a record whose subscription is gone (never written so: deletes are one batch) is skipped
        if (subscription === undefined) continue
        const number = Number(key.slice(bang + 1))
        const parsed = JSON.parse(value) as unknown
        if (field === 'deadLetters') subscription.deadLetters.set(number, parsed as DeadLetter)
        else if (Array.isArray(parsed)) for (const [offset, deliveries, deadline] of parsed as Array<[number, number, number]>) subscription.leases.set(offset, { deliveries, deadline, batch: number })
        else subscription.leases.set(number, { ...(parsed as Lease), batch: number })
      }
    }
    return [...byName.values()]
  }

  async write (ops: StoreOp[]): Promise<void> {
    if (ops.length === 0) return
    await new Promise<void>((resolve, reject) => {
      this.#waiting.push({ ops, resolve, reject })
      // #writeAll hands each failure to the writes it concerns; it never rejects itself. It starts
      // after the I/O callbacks of this turn of the event loop: the changes they make (acks of
      // other subscriptions, pulls) go in the same batch (a LevelDB batch costs ~50 µs of this
      // thread, however small)
      this.#writing ??= new Promise<void>(resolve => setImmediate(resolve)).then(async () => { await this.#writeAll() })
    })
  }

  async #writeAll (): Promise<void> {
    while (this.#waiting.length > 0) {
      const batch = this.#waiting
      this.#waiting = []
      try {
        await this.db.batch(lastPerKey(batch.flatMap(w => w.ops)))
        for (const w of batch) w.resolve()
      } catch (err) {
        for (const w of batch) w.reject(err as Error)
      }
    }
    this.#writing = undefined
  }

  queue (state: SubscriptionState, deps: QueueDeps): PullQueue {
    const stored: StoredSubscription = { leases: new Map(), deadLetters: new Map(), ...state }
    return new PullQueue(stored, { ...deps, store: this })
  }

  /** Names are taken in the broker's memory (one broker keeps them): this only writes. */
  async create (state: SubscriptionState): Promise<boolean> {
    await this.write([ops.subscription(state)])
    return true
  }

  async remove (name: string): Promise<void> {
    await this.write(await this.deleteOps(name))
  }

  /** The ops that delete a subscription and everything it holds. */
  async deleteOps (name: string): Promise<StoreOp[]> {
    const ops: StoreOp[] = [{ type: 'del', key: specKey(name) }]
    for (const prefix of [`l!${name}!`, `d!${name}!`]) {
      for (const key of await this.db.keys({ gte: prefix, lt: prefix.slice(0, -1) + '"' }).all()) ops.push({ type: 'del', key })
    }
    return ops
  }

  async close (): Promise<void> {
    await this.#writing
    await this.db.close()
  }
}

/**
 * The ops in the order asked, each key's last only: a later change to a key wins, as it would
 * written one by one, and a batch record rewritten by each of several acks is written once.
 */
function lastPerKey (all: StoreOp[]): StoreOp[] {
  const last = new Map<string, StoreOp>()
  for (const op of all) {
    last.delete(op.key)
    last.set(op.key, op)
  }
  return last.size === all.length ? all : [...last.values()]
}

export const ops = {
  subscription: (state: SubscriptionState): StoreOp => ({ type: 'put', key: specKey(state.spec.name), value: JSON.stringify({ spec: state.spec, next: state.next, disabled: state.disabled }) }),
  leases: (name: string, batch: number, leases: Array<[number, Lease]>): StoreOp => ({ type: 'put', key: leaseKey(name, batch), value: JSON.stringify(leases.map(([offset, lease]) => [offset, lease.deliveries, lease.deadline])) }),
  dropLeases: (name: string, batch: number): StoreOp => ({ type: 'del', key: leaseKey(name, batch) }),
  deadLetter: (name: string, offset: number, letter: DeadLetter): StoreOp => ({ type: 'put', key: deadKey(name, offset), value: JSON.stringify(letter) }),
  dropDeadLetter: (name: string, offset: number): StoreOp => ({ type: 'del', key: deadKey(name, offset) })
}
