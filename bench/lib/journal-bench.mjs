// What the history and subscriptions benches share: the events they publish, a journal filled
// with them, and the bare iteration of that journal's LevelDB (the physical limit of a replay).
import { randomBytes } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ClassicLevel } from 'classic-level'
import { LevelJournal } from '../../packages/journal/dist/index.js'
import { cpuSeconds } from './lean-client.mjs'

const MiB = 1024 * 1024
/** ns, CLOCK_MONOTONIC: exact as a Number for 104 days of uptime, and the same in every process */
export const now = () => Number(process.hrtime.bigint())

// Events are 1 KiB JSON objects, `{"t":"<16-digit ns stamp>","seq":N,"pad":"..."}`: JSON
// because the broker renders JSON payloads as JSON (its real work per event), the pad random
// base64 because LevelDB compresses its blocks (a run of 'x' would leave nothing to read)
const POOL = randomBytes(3 * MiB).toString('base64')
export const MARK = Buffer.from('"t":"')
export const STAMP_DIGITS = 16
export function eventPayload (seq, stamp = 0) {
  const head = `{"t":"${String(stamp).padStart(STAMP_DIGITS, '0')}","seq":${seq},"pad":"`
  const padLength = 1024 - head.length - 2
  const at = (seq * 1031) % (POOL.length - padLength) // consecutive events share no pad bytes
  return Buffer.from(head + POOL.slice(at, at + padLength) + '"}', 'latin1')
}

const RETENTION = { maxAgeMs: 3650 * 86400_000, maxBytes: 100 * 1024 ** 3 }

async function dirBytes (dir) {
  let total = 0
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size
  return total
}

/** Appends `events` events on `topic` through LevelJournal, 1000 in flight (the journal group-commits them). */
export async function fillJournal (dir, events, topic) {
  const journal = await LevelJournal.open(dir, { retention: RETENTION })
  const started = performance.now()
  for (let done = 0; done < events; done += 1000) {
    await Promise.all(Array.from({ length: Math.min(1000, events - done) }, (_, i) =>
      journal.append({ topic, payload: eventPayload(done + i), qos: 0, retain: false, json: true })))
  }
  const seconds = (performance.now() - started) / 1000
  const { bytes } = journal.bounds()
  await journal.close()
  return { perSecond: events / seconds, bytes, onDisk: await dirBytes(dir) }
}

/** The physical limit: every entry's value read with classic-level, nothing decoded. */
export async function bareIteration (dir) {
  const db = new ClassicLevel(dir, { valueEncoding: 'buffer' })
  await db.open()
  const cpu = process.cpuUsage()
  const started = performance.now()
  let events = 0
  let bytes = 0
  const iterator = db.iterator({ gte: 'e', lt: 'f', highWaterMarkBytes: 4 << 20 })
  for (;;) {
    const entries = await iterator.nextv(1000)
    if (entries.length === 0) break
    for (const [, value] of entries) bytes += value.length
    events += entries.length
  }
  await iterator.close()
  const seconds = (performance.now() - started) / 1000
  const load = cpuSeconds(cpu) / seconds
  await db.close()
  return { events, bytes, seconds, load }
}
