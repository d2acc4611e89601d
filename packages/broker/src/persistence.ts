import { mkdir } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { ClassicLevel } from 'classic-level'

const require = createRequire(import.meta.url)

/** The persistence object Aedes 1.x expects (async methods, async setup()). */
export interface AedesPersistence {
  setup: (broker: unknown) => Promise<void>
  destroy: () => Promise<void>
  [method: string]: unknown
}

/**
 * Retained messages, persistent sessions, their queued QoS 1/2 messages and wills, in an
 * embedded LevelDB under `dir`: no external server. aedes-persistence-level's main export
 * wraps the store in the 0.x callback API; Aedes 1.x wants the async class directly.
 */
export async function openLevelPersistence (dir: string): Promise<AedesPersistence> {
  await mkdir(dir, { recursive: true })
  const db = new ClassicLevel<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  const AsyncLevelPersistence = require('aedes-persistence-level/asyncPersistence.js') as new (db: unknown) => AedesPersistence
  return new AsyncLevelPersistence(db)
}
