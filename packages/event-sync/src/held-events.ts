/**
 * One endpoint's events within the observation period and not yet exported, oldest first: only
 * their journal offsets and timestamps (the events themselves stay in the journal, on disk), 16
 * bytes each in a ring outside the JavaScript heap. Added at the newest end, expired at the
 * oldest, taken all at once by a trigger.
 */
export class HeldEvents {
  #offsets = new Float64Array(16)
  #timestamps = new Float64Array(16)
  #head = 0
  #size = 0

  get size (): number {
    return this.#size
  }

  /** the i-th oldest held event's offset and timestamp */
  offsetAt (i: number): number {
    return this.#offsets[(this.#head + i) % this.#offsets.length]!
  }

  timestampAt (i: number): number {
    return this.#timestamps[(this.#head + i) % this.#timestamps.length]!
  }

  add (offset: number, timestamp: number): void {
    if (this.#size === this.#offsets.length) this.#grow()
    const at = (this.#head + this.#size) % this.#offsets.length
    this.#offsets[at] = offset
    this.#timestamps[at] = timestamp
    this.#size++
  }

  /** Drops the events stamped before `cutoff`; returns how many of them are past offset `countAfter`. */
  expire (cutoff: number, countAfter = 0): number {
    let dropped = 0
    while (this.#size > 0 && this.#timestamps[this.#head]! < cutoff) {
      if (this.#offsets[this.#head]! > countAfter) dropped++
      this.#head = (this.#head + 1) % this.#offsets.length
      this.#size--
    }
    if (this.#size === 0) this.#head = 0
    return dropped
  }

  /** The held offsets, oldest first. */
  offsets (): number[] {
    const out = new Array<number>(this.#size)
    for (let i = 0; i < this.#size; i++) out[i] = this.offsetAt(i)
    return out
  }

  clear (): void {
    this.#head = 0
    this.#size = 0
    // a burst's capacity is given back
    if (this.#offsets.length > 1024) {
      this.#offsets = new Float64Array(16)
      this.#timestamps = new Float64Array(16)
    }
  }

  #grow (): void {
    const offsets = new Float64Array(this.#offsets.length * 2)
    const timestamps = new Float64Array(this.#timestamps.length * 2)
    for (let i = 0; i < this.#size; i++) {
      offsets[i] = this.offsetAt(i)
      timestamps[i] = this.timestampAt(i)
    }
    this.#offsets = offsets
    this.#timestamps = timestamps
    this.#head = 0
  }
}
