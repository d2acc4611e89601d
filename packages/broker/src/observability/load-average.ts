/**
 * Mosquitto's `$SYS/broker/load/...` figures: an exponentially weighted moving average of a
 * counter's rate per minute, over 1, 5 or 15 minutes, updated at every $SYS interval.
 */
export class LoadAverage {
  private value = 0
  private last: number | undefined

  constructor (private readonly windowSeconds: number) {}

  /** `total` is the counter's current value, `elapsedSeconds` the time since the last update. */
  update (total: number, elapsedSeconds: number): number {
    if (this.last !== undefined && elapsedSeconds > 0) {
      const perMinute = (total - this.last) * 60 / elapsedSeconds
      const decay = Math.exp(-elapsedSeconds / this.windowSeconds)
      this.value = this.value * decay + perMinute * (1 - decay)
    }
    this.last = total
    return this.value
  }
}
