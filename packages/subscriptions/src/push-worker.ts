import type { Delivery, Queue } from './queue.js'
import type { SubscriptionSpec } from './spec.js'

/** What became of one POST: acked (2xx), to try again later, the endpoint gone (410), or refused for good (other 4xx). */
export type PushOutcome =
  | { kind: 'ok' }
  | { kind: 'retry', reason: string }
  | { kind: 'gone', reason: string }
  | { kind: 'reject', reason: string }

export interface PushWorkerDeps {
  send: (delivery: Delivery, spec: SubscriptionSpec) => Promise<PushOutcome>
  /** ms before the next attempt after the n-th failed one (the last step repeats) */
  retrySchedule: readonly number[]
  /** POSTs in flight at once for this subscription (ordered subscriptions: one) */
  concurrency: number
  /** a failed pull, a failed store write: logged, then tried again */
  onError: (err: Error) => void
  /** the subscription was disabled (410 Gone) */
  onDisabled: (reason: string) => void
  random?: () => number
}

/** Longest sleep between looks at the queue when nothing wakes the worker. */
const IDLE_MS = 30_000

/**
 * Pushes one subscription's events: it pulls from the subscription's queue as a consumer would
 * (so redelivery, dead letters and restarts behave as for pull), POSTs each event, and acks it on
 * a 2xx. A failure is due again after the retry schedule's next step (with ±20% jitter);
 * 410 Gone disables the subscription; another 4xx sends the event to the dead letters.
 */
export class PushWorker {
  #inflight = 0
  /** pulled, waiting for a slot */
  readonly #ready: Delivery[] = []
  /** answered, the ack (or retry) not yet written */
  #unwritten = 0
  #stopped = false
  #wake: (() => void) | undefined
  /** woken while not asleep: the next sleep returns at once (an append during a pull is not missed) */
  #woken = false
  readonly #running = new Set<Promise<void>>()
  readonly #loop: Promise<void>
  /** acks waiting for the write under way, written together after it (one write for many POSTs) */
  #acks: { ids: string[], written: Promise<void> } | undefined
  #ackWrites: Promise<void> = Promise.resolve()

  constructor (private readonly queue: Queue, private readonly deps: PushWorkerDeps) {
    this.#loop = this.#run()
  }

  /** POSTs in flight now. */
  get inflight (): number {
    return this.#inflight
  }

  /** Stops pulling and waits for the POSTs in flight. */
  async stop (): Promise<void> {
    this.#stopped = true
    this.#nudge()
    await this.#loop
    await Promise.all(this.#running)
  }

  async #run (): Promise<void> {
    // woken by appends for this subscription only: a busy bus of other topics costs it a topic check
    const unsubscribe = this.queue.onNew(() => { this.#nudge() })
    const { concurrency } = this.deps
    try {
      while (!this.#stopped && this.queue.state.disabled === undefined) {
        this.#woken = false
        while (this.#inflight < concurrency && this.#ready.length > 0) this.#push(this.#ready.shift()!)
        // pulled ahead, so that a slot that frees is filled at once (the pull's write is not
        // waited for between two POSTs): topped up to twice `concurrency` once fewer than
        // `concurrency` wait, so that a pull (a write) takes several events, not one per POST
        const want = 3 * concurrency - this.#inflight - this.#ready.length
        if (this.#ready.length < concurrency && want > 0 && this.queue.mayHaveEvents()) {
          let batch: Delivery[] = []
          try {
            batch = await this.queue.pull(want)
          } catch (err) {
            this.deps.onError(err as Error)
            await this.#sleep(1000)
            continue
          }
          this.#ready.push(...batch)
          if (batch.length > 0) continue
        }
        const deadline = this.#ready.length > 0 ? undefined : this.queue.nextDeadline()
        await this.#sleep(deadline === undefined ? IDLE_MS : Math.min(IDLE_MS, Math.max(0, deadline - Date.now())))
      }
    } finally {
      unsubscribe()
      // pulled and never sent (stopped, or disabled): due again at once, for whoever pushes next
      const unsent = this.#ready.splice(0)
      await Promise.all(unsent.map(async d => await this.queue.retryLater(d.ackId, 0).catch(() => false)))
    }
  }

  #push (delivery: Delivery): void {
    this.#inflight++
    let released = false
    // the slot frees when the answer comes; the ack (or retry) is written after, meanwhile
    const release = (): void => {
      if (released) return
      released = true
      this.#inflight--
      // the next one goes out at once, even while the loop waits for a pull
      if (!this.#stopped && this.queue.state.disabled === undefined && this.#ready.length > 0) this.#push(this.#ready.shift()!)
      this.#nudge()
    }
    const running = this.#settle(delivery, release).catch((err: unknown) => { this.deps.onError(err as Error) }).finally(() => {
      release()
      this.#running.delete(running)
    })
    this.#running.add(running)
  }

  async #settle (delivery: Delivery, answered: () => void): Promise<void> {
    const { spec } = this.queue.state
    const outcome = await this.deps.send(delivery, spec).catch((err: unknown): PushOutcome => ({ kind: 'retry', reason: (err as Error).message }))
    // answered, its outcome not yet written: at most `concurrency` of those free their slot early,
    // so that a broker killed now repeats at most twice `concurrency` POSTs
    this.#unwritten++
    if (this.#unwritten <= this.deps.concurrency) answered()
    try {
      await this.#record(delivery, outcome)
    } finally {
      this.#unwritten--
    }
  }

  async #record (delivery: Delivery, outcome: PushOutcome): Promise<void> {
    switch (outcome.kind) {
      case 'ok':
        this.queue.counters.pushOk++
        await this.#ack(delivery.ackId)
        return
      case 'retry':
        this.queue.counters.pushFailed++
        await this.queue.retryLater(delivery.ackId, this.#delay(delivery.delivery))
        return
      case 'gone':
        this.queue.counters.pushFailed++
        // the event stays unacked: it goes out when the subscription is enabled again
        await this.queue.retryLater(delivery.ackId, 0)
        if (this.queue.state.disabled === undefined) {
          await this.queue.setDisabled(outcome.reason)
          this.deps.onDisabled(outcome.reason)
        }
        return
      case 'reject':
        this.queue.counters.pushFailed++
        await this.queue.deadLetter(delivery.ackId, outcome.reason)
    }
  }

  /**
   * Acks a delivery with the others answered meanwhile: one ack write at a time, each taking
   * every ack that came while the one before it was written. Resolves once its own is written.
   */
  async #ack (ackId: string): Promise<void> {
    if (this.#acks === undefined) {
      const batch: { ids: string[], written: Promise<void> } = { ids: [], written: Promise.resolve() }
      batch.written = this.#ackWrites.then(async () => {
        // closed: acks from now on wait for the next write
        this.#acks = undefined
        await this.queue.ack(batch.ids)
      })
      this.#ackWrites = batch.written.catch(() => {})
      this.#acks = batch
    }
    this.#acks.ids.push(ackId)
    await this.#acks.written
  }

  /** The schedule's step after the n-th failed attempt, ±20%. */
  #delay (attempt: number): number {
    const { retrySchedule } = this.deps
    const step = retrySchedule[Math.min(attempt, retrySchedule.length) - 1] ?? 0
    return Math.round(step * (0.8 + 0.4 * (this.deps.random ?? Math.random)()))
  }

  #nudge (): void {
    if (this.#wake !== undefined) this.#wake()
    else this.#woken = true
  }

  async #sleep (ms: number): Promise<void> {
    if (this.#stopped || this.#woken) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(done, ms)
      function done (): void {
        clearTimeout(timer)
        resolve()
      }
      this.#wake = done
    })
    this.#wake = undefined
  }
}
