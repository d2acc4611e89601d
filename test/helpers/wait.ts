/** Polls `check` until it returns a value other than undefined/false, or fails after `ms`. */
export async function waitFor<T> (what: string, check: () => T | undefined | false | Promise<T | undefined | false>, ms = 10000, every = 50): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`)
    await sleep(every)
  }
}

export async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}
