import { Backoff, sleep } from './backoff.js'

export interface ReconnectOptions {
  backoff: { initialMs: number, maxMs: number }
  /** aborting stops the loop: no new attempt, the wait ends at once */
  signal: AbortSignal
  /**
   * One connection, from connecting until it ends: resolves when it ended, throws when it
   * failed. Calls `connected()` once it is up, which resets the backoff.
   */
  attempt: (attempt: number, connected: () => void) => Promise<void>
  /** After each attempt (unless stopping): what failed, if anything, and the wait before the next. */
  retrying: (outcome: { failure: Error | undefined, wasConnected: boolean, retryInMs: number }) => void
}

/**
 * The reconnect loop every bridge uses, for its source (SSH, IMAP, an HTTP listener) and for
 * the broker: attempt, and after each end or failure wait a capped exponential backoff with
 * jitter (so bridges restarting together do not reconnect in step), until stopped.
 */
export async function keepReconnecting (options: ReconnectOptions): Promise<void> {
  const backoff = new Backoff(options.backoff.initialMs, options.backoff.maxMs)
  for (let attempt = 0; !options.signal.aborted; attempt++) {
    let failure: Error | undefined
    let wasConnected = false
    try {
      await options.attempt(attempt, () => {
        wasConnected = true
        backoff.reset()
      })
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err))
    }
    if (options.signal.aborted) return
    const retryInMs = backoff.next()
    options.retrying({ failure, wasConnected, retryInMs })
    await sleep(retryInMs, options.signal)
  }
}
