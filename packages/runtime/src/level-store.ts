import { mkdir } from 'node:fs/promises'
import { ClassicLevel } from 'classic-level'
import { ConfigError } from './config/errors.js'

/**
 * The store directory is locked by another process (LevelDB's LOCK file). That may pass by
 * itself — an old process still shutting down — so it is a failure (exit 1: systemd retries),
 * not a configuration error (exit 2: systemd gives up).
 */
export class StoreLockedError extends Error {
  readonly code = 'FIREHOSE_STORE_LOCKED'
}

export interface StoreOptions {
  /** the configuration key naming the directory, for messages: `persistence.dir`, `outbox.dir` */
  key: string
  /** who else might hold the lock: `broker`, `bridge` */
  user: string
  /** the configuration's source, for a ConfigError */
  source: string
  /** LevelDB's tuning (write buffer, compression), for a store with another load than the default */
  tuning?: { writeBufferSize?: number, compression?: boolean }
}

/**
 * Opens a LevelDB directory, creating it when missing. Locked: a StoreLockedError asking
 * whether another `user` runs on it. Any other failure (a file where the directory should be,
 * no permission): a ConfigError naming the key.
 */
export async function openLevelStore<V extends string | Buffer> (dir: string, valueEncoding: V extends Buffer ? 'buffer' : 'utf8', options: StoreOptions): Promise<ClassicLevel<string, V>> {
  try {
    await mkdir(dir, { recursive: true })
    const db = new ClassicLevel<string, V>(dir, { valueEncoding, ...options.tuning })
    await db.open()
    return db
  } catch (err) {
    const cause = (err as { cause?: Error }).cause?.message ?? (err as Error).message
    if (/lock/i.test(cause)) throw new StoreLockedError(`${options.key}: cannot open ${dir}: ${cause} (is another ${options.user} using this directory?)`)
    throw new ConfigError([`${options.key}: cannot open ${dir}: ${cause}`], options.source)
  }
}
