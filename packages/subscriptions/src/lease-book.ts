import type { Lease, StoreOp } from './store.js'
import { ops } from './store.js'

/**
 * A subscription's leases on disk, kept by batch: the events one pull hands out are one record
 * (`l!name!batch` -> [[offset, deliveries, deadline], ...]), so a pull of 100 and the ack of
 * those 100 are one put and one delete, not a hundred of each. A change to one lease (an ack, a
 * nack, a redelivery into a later pull's batch) rewrites its batch's record, or deletes it once
 * empty. The leases themselves stay in the subscription's map, each knowing its batch.
 */
export class LeaseBook {
  readonly #batches = new Map<number, Set<number>>()
  readonly #dirty = new Set<number>()
  #lastBatch = 0

  constructor (private readonly name: string, private readonly leases: Map<number, Lease>) {
    for (const [offset, lease] of leases) {
      // a lease written before batches were (one record per offset) is its own batch
      lease.batch ??= offset
      this.#members(lease.batch).add(offset)
      this.#lastBatch = Math.max(this.#lastBatch, lease.batch)
    }
  }

  /** A batch number no record has: for the leases of one pull. */
  newBatch (): number {
    return ++this.#lastBatch
  }

  /** Leases `offset` in `batch` (taking it out of the batch it was in). */
  set (offset: number, lease: Lease, batch: number): void {
    this.#leave(offset)
    lease.batch = batch
    this.leases.set(offset, lease)
    this.#members(batch).add(offset)
    this.#dirty.add(batch)
  }

  /** The lease of `offset` changed in place (its deadline): its batch is written again. */
  changed (offset: number): void {
    const batch = this.leases.get(offset)?.batch
    if (batch !== undefined) this.#dirty.add(batch)
  }

  drop (offset: number): void {
    this.#leave(offset)
    this.leases.delete(offset)
  }

  clear (): void {
    for (const batch of this.#batches.keys()) this.#dirty.add(batch)
    for (const members of this.#batches.values()) members.clear()
    this.leases.clear()
  }

  /** The writes that bring the changed batches' records up to date, appended to `changes`. */
  flush (changes: StoreOp[]): void {
    for (const batch of this.#dirty) {
      const members = this.#batches.get(batch)
      if (members === undefined || members.size === 0) {
        this.#batches.delete(batch)
        changes.push(ops.dropLeases(this.name, batch))
      } else {
        changes.push(ops.leases(this.name, batch, [...members].map(offset => [offset, this.leases.get(offset)!])))
      }
    }
    this.#dirty.clear()
  }

  #leave (offset: number): void {
    const batch = this.leases.get(offset)?.batch
    if (batch === undefined) return
    this.#batches.get(batch)?.delete(offset)
    this.#dirty.add(batch)
  }

  #members (batch: number): Set<number> {
    let members = this.#batches.get(batch)
    if (members === undefined) this.#batches.set(batch, members = new Set())
    return members
  }
}
