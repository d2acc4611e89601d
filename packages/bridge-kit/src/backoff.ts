/**
 * Capped exponential backoff with jitter, for reconnecting to a source or a broker: the
 * delay doubles from `initialMs` up to `maxMs`, each one drawn between half and all of it
 * so that many bridges restarting together do not reconnect in step.
 */
export class Backoff {
  private attempt = 0

  constructor (
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random
  ) {}

  next (): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt)
    if (ceiling < this.maxMs) this.attempt++
    return Math.round(ceiling * (0.5 + this.random() / 2))
  }

  reset (): void {
    this.attempt = 0
  }
}

export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** A timer to race against; cancel it when the race is won, so it holds nothing alive. */
export function deadline (ms: number): { expired: Promise<'timeout'>, cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<'timeout'>(resolve => { timer = setTimeout(() => resolve('timeout'), ms) })
  return { expired, cancel: () => clearTimeout(timer) }
}
