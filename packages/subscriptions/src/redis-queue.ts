import type { JournalEntry } from '@firehose/journal'
import { ackIdOf, parseAckId } from './ack-id.js'
import type { QueueDeps } from './backend.js'
import { newCounters, type SubscriptionCounters } from './counters.js'
import { gone } from './errors.js'
import { FilterCache } from './filter-cache.js'
import { Listeners, type Delivery, type Queue, type SubscriptionState } from './queue.js'
import type { RedisSubscriptionStore, ScriptName, SubscriptionKeys } from './redis-store.js'
import type { DeadLetter } from './store.js'

/** Entries read from the journal per page while looking for new events. */
const PAGE = 250
/** Times a pull reads again after another node's pull moved the cursor under it. */
const CURSOR_RETRIES = 5

type Settle = 'drop' | 'due' | 'dead'

/**
 * A subscription kept in Redis, served by every node of a cluster. The state lives in Redis
 * alone: a pull leases due events and takes new ones in single scripts (a compare-and-set on
 * the cursor), so two nodes pulling at once never hand out the same event; acks, nacks and
 * retries settle a delivery only while it is the current one. Figures (`outstanding`, the dead
 * letters, the next deadline) are this node's last look, refreshed by `refresh`.
 */
export class RedisPullQueue implements Queue {
  readonly counters: SubscriptionCounters = newCounters()
  readonly #listeners = new Listeners()
  readonly #filter: FilterCache
  #outstanding = 0
  #deadLetters = 0
  #nextDeadline: number | undefined

  constructor (readonly state: SubscriptionState, private readonly deps: QueueDeps & { store: RedisSubscriptionStore }) {
    this.#filter = new FilterCache(deps.filter)
  }

  get name (): string {
    return this.state.spec.name
  }

  get outstanding (): number {
    return this.#outstanding
  }

  get deadLetterCount (): number {
    return this.#deadLetters
  }

  /** Always: the queue is in Redis, where other nodes change it. */
  mayHaveEvents (): boolean {
    return true
  }

  nextDeadline (): number | undefined {
    return this.#nextDeadline
  }

  async refresh (): Promise<void> {
    const k = this.#keys()
    const replies = await this.deps.store.db.pipeline()
      .hmget(k.state, 'next', 'disabled')
      .zcard(k.due)
      .hlen(k.dead)
      .zrange(k.due, 0, 0, 'WITHSCORES')
      .exec()
    const [state, due, dead, earliest] = (replies ?? []).map(([err, value]) => {
      if (err !== null) throw err
      return value
    }) as [Array<string | null>, number, number, string[]]
    if (state[0] !== null) this.state.next = Number(state[0])
    this.#outstanding = due
    this.#deadLetters = dead
    this.#nextDeadline = earliest.length === 2 ? Number(earliest[1]) : undefined
  }

  /** A lease is due by `at`: the earliest deadline known here moves up to it. */
  #dueBy (at: number): void {
    if (this.#nextDeadline === undefined || at < this.#nextDeadline) this.#nextDeadline = at
  }

  accepts (entry: JournalEntry): boolean {
    return this.#filter.get()(entry)
  }

  /** Wakes the listeners when some are this subscription's; pulls read them from the journal. */
  announced (_first: number, _last: number, mine: readonly JournalEntry[]): void {
    if (mine.length > 0) this.#listeners.call()
  }

  onNew (listener: () => void): () => void {
    return this.#listeners.add(listener)
  }

  wake (): void {
    this.#listeners.call()
  }

  close (): void {
    this.#listeners.clear()
  }

  async pull (max: number): Promise<Delivery[]> {
    const { spec } = this.state
    const now = this.deps.now()
    const oldestKept = now - spec.retentionMs
    const deadline = String(now + spec.ackDeadlineMs)
    if (spec.ordered) max = 1
    const k = this.#keys()
    const claimed = await this.deps.store.run('CLAIM_DUE', [k.index, k.state, k.due, k.n, k.dead], this.name, String(now), max, deadline, spec.maxDeliveries, spec.ordered ? '1' : '0') as Array<string | number>
    if (Number(claimed[0]) === -1) throw gone(this.name)
    this.counters.deadLettered += Number(claimed[2])
    this.#deadLetters += Number(claimed[2])
    if (Number(claimed[0]) === 1) return []
    const out = await this.#redeliveries(claimed, oldestKept)
    let next = Number(claimed[1])
    for (let tries = 0; out.length < max && tries < CURSOR_RETRIES; tries++) {
      const want = max - out.length
      const { taken, to } = await this.#scan(next, want, oldestKept)
      if (to === next) break
      const [status, current] = await this.deps.store.run('TAKE_NEW', [k.index, k.state, k.due, k.n], this.name, String(next), String(to), deadline, spec.ordered ? '1' : '0', ...taken.map(entry => String(entry.offset))) as [number, string]
      if (Number(status) === -1) throw gone(this.name)
      next = Number(current)
      if (Number(status) === 1) continue // another node's pull moved the cursor: read again from where it stands
      for (const entry of taken) out.push({ ackId: ackIdOf(entry.offset, 1), delivery: 1, entry })
      if (taken.length < want) break
    }
    this.state.next = next
    this.#outstanding += out.length
    if (out.length > 0) this.#dueBy(Number(deadline))
    this.counters.delivered += out.length
    return out
  }

  /** The due events CLAIM_DUE leased, from the journal; those no longer there (or past retention) are dropped. */
  async #redeliveries (claimed: Array<string | number>, oldestKept: number): Promise<Delivery[]> {
    const leased: Array<{ offset: number, delivery: number }> = []
    for (let i = 3; i < claimed.length; i += 2) leased.push({ offset: Number(claimed[i]), delivery: Number(claimed[i + 1]) })
    const found = await Promise.all(leased.map(async ({ offset }) => (await this.deps.journal.read(offset, 1))[0]))
    const out: Delivery[] = []
    const expired: string[] = []
    leased.forEach(({ offset, delivery }, i) => {
      const entry = found[i]
      if (entry === undefined || entry.offset !== offset || entry.timestamp < oldestKept) {
        expired.push(ackIdOf(offset, delivery))
        return
      }
      out.push({ ackId: ackIdOf(offset, delivery), delivery, entry })
      if (delivery > 1) this.counters.redelivered++
    })
    if (expired.length > 0) this.counters.expired += await this.#settle(expired, 'drop')
    return out.sort((a, b) => a.entry.offset - b.entry.offset)
  }

  /** Up to `want` of this subscription's entries from `from` on; `to` is the offset after the last one looked at. */
  async #scan (from: number, want: number, oldestKept: number): Promise<{ taken: JournalEntry[], to: number }> {
    const accepts = this.#filter.get()
    const taken: JournalEntry[] = []
    let to = Math.max(from, this.deps.journal.bounds().first)
    for (;;) {
      const page = await this.deps.journal.read(to, PAGE)
      if (page.length === 0) return { taken, to }
      for (const entry of page) {
        if (taken.length === want) return { taken, to: entry.offset }
        if (entry.timestamp >= oldestKept && accepts(entry)) taken.push(entry)
        to = entry.offset + 1
      }
    }
  }

  async ack (ackIds: readonly string[]): Promise<number> {
    const acked = await this.#settle(ackIds, 'drop')
    this.counters.acked += acked
    return acked
  }

  async nack (ackIds: readonly string[]): Promise<number> {
    const nacked = await this.#settle(ackIds, 'due', this.deps.now())
    this.counters.nacked += nacked
    if (nacked > 0) this.#listeners.call()
    return nacked
  }

  async retryLater (ackId: string, delayMs: number): Promise<boolean> {
    return await this.#settle([ackId], 'due', this.deps.now() + delayMs) === 1
  }

  async deadLetter (ackId: string, reason: string): Promise<boolean> {
    const moved = await this.#settle([ackId], 'dead', 0, reason) === 1
    if (moved) {
      this.counters.deadLettered++
      this.#deadLetters++
    }
    return moved
  }

  async seek (next: number): Promise<void> {
    await this.#count('SEEK', ['index', 'state', 'due', 'n', 'version'], String(next))
    this.state.next = next
    this.#outstanding = 0
    this.#nextDeadline = undefined
    this.#listeners.call()
  }

  async replayDeadLetters (): Promise<number> {
    const replayed = await this.#count('REPLAY_DEAD', ['index', 'due', 'n', 'dead', 'version'], String(this.deps.now()))
    this.#deadLetters = 0
    this.#outstanding += replayed
    if (replayed > 0) {
      this.#dueBy(this.deps.now())
      this.#listeners.call()
    }
    return replayed
  }

  async deadLetters (): Promise<Array<[number, DeadLetter]>> {
    const letters = await this.deps.store.db.hgetall(this.#keys().dead)
    return Object.entries(letters).map(([offset, letter]): [number, DeadLetter] => [Number(offset), JSON.parse(letter)]).sort((a, b) => a[0] - b[0])
  }

  async setDisabled (reason: string | undefined): Promise<void> {
    const disabled = reason === undefined ? undefined : { reason, at: this.deps.now() }
    await this.#count('SET_DISABLED', ['index', 'state', 'version'], disabled === undefined ? '' : JSON.stringify(disabled))
    if (disabled === undefined) delete this.state.disabled
    else this.state.disabled = disabled
  }

  /** Settles the current deliveries among `ackIds`; returns how many. */
  async #settle (ackIds: readonly string[], what: Settle, dueAt = 0, reason = ''): Promise<number> {
    const args: string[] = []
    const at = this.deps.now()
    for (const ackId of ackIds) {
      const id = parseAckId(ackId)
      if (id === undefined) continue
      args.push(String(id.offset), String(id.delivery), what === 'dead' ? JSON.stringify({ deliveries: id.delivery, reason, at }) : '')
    }
    if (args.length === 0) return 0
    const settled = await this.#count('SETTLE', ['index', 'due', 'n', 'dead'], what, String(dueAt), ...args)
    if (what === 'drop' || what === 'dead') this.#outstanding = Math.max(0, this.#outstanding - settled)
    // a retry, or a nack: a waiting push worker or pull sleeps until then, not until the next refresh
    else if (settled > 0) this.#dueBy(dueAt)
    return settled
  }

  #keys (): SubscriptionKeys {
    return this.deps.store.keys(this.name)
  }

  /** Runs a script that answers a count, or -1 when the subscription is gone (then: a 404). */
  async #count (script: ScriptName, keys: ReadonlyArray<keyof SubscriptionKeys>, ...args: string[]): Promise<number> {
    const k = this.#keys()
    const count = Number(await this.deps.store.run(script, keys.map(key => k[key]), this.name, ...args))
    if (count === -1) throw gone(this.name)
    return count
  }
}
