import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { LevelJournal, parseByteSize, parseDuration, type NewEntry } from '../src/index.js'

// The embedded journal on a real LevelDB in a temporary directory: offsets, timestamps,
// group commit, reads by offset and time, retention by age and size, reopening.

const DAY = 86_400_000
const event = (i: number, extra: Partial<NewEntry> = {}): NewEntry => ({ topic: `gerrit/e/${i}`, payload: Buffer.from(`{"n":${i}}`), qos: 1, retain: false, ...extra })
const dir = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'firehose-journal-'))

t.test('appends get increasing offsets and non-decreasing timestamps, and read back whole', async t => {
  let clock = 1_000_000
  const journal = await LevelJournal.open(await dir(), { retention: { maxAgeMs: DAY, maxBytes: 1e9 }, now: () => clock })
  t.teardown(() => journal.close())
  const first = await journal.append(event(0, { user: 'gerrit', retain: true, qos: 2 }))
  clock -= 500 // the clock steps back: the timestamp does not
  const second = await journal.append(event(1))
  t.same([first.offset, second.offset], [1, 2])
  t.equal(second.timestamp, first.timestamp, 'never below the previous one')
  const [a, b] = await journal.read(1, 10)
  t.same({ ...a, payload: a!.payload.toString() }, { offset: 1, timestamp: 1_000_000, topic: 'gerrit/e/0', payload: '{"n":0}', qos: 2, retain: true, user: 'gerrit' })
  t.equal(b!.user, undefined)
  t.same(journal.bounds(), { first: 1, last: 2, bytes: journal.bounds().bytes, appends: 2 })
})

t.test('appends made together are written together, in call order, and announced once each', async t => {
  const journal = await LevelJournal.open(await dir(), { retention: { maxAgeMs: DAY, maxBytes: 1e9 } })
  t.teardown(() => journal.close())
  const batches: number[][] = []
  journal.onAppended(entries => batches.push(entries.map(e => e.offset)))
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => await journal.append(event(i))))
  t.same(results.map(r => r.offset), Array.from({ length: 500 }, (_, i) => i + 1))
  t.same(batches.flat(), Array.from({ length: 500 }, (_, i) => i + 1), 'each announced once, in order')
  t.ok(batches.length < 500, `group commit: ${batches.length} writes for 500 appends`)
  t.same((await journal.read(250, 3)).map(e => e.topic), ['gerrit/e/249', 'gerrit/e/250', 'gerrit/e/251'])
})

t.test('offsetAt finds the first entry at or after a time', async t => {
  let clock = 10_000
  const journal = await LevelJournal.open(await dir(), { retention: { maxAgeMs: DAY, maxBytes: 1e9 }, now: () => clock })
  t.teardown(() => journal.close())
  for (let i = 0; i < 100; i++) {
    clock = 10_000 + Math.floor(i / 3) * 100 // three entries per timestamp
    await journal.append(event(i))
  }
  t.equal(await journal.offsetAt(0), 1, 'before everything: the first')
  t.equal(await journal.offsetAt(10_000), 1)
  t.equal(await journal.offsetAt(10_050), 4, 'between two times: the next one')
  t.equal(await journal.offsetAt(10_100), 4, 'the first of equal timestamps')
  t.equal(await journal.offsetAt(13_300), 100)
  t.equal(await journal.offsetAt(99_999), 101, 'after everything: the next offset to come')
})

t.test('retention by age and by size, continuously; offsets never reused after a reopen', async t => {
  const where = await dir()
  let clock = 0
  let journal = await LevelJournal.open(where, { retention: { maxAgeMs: 1000, maxBytes: 1e9 }, now: () => clock, retentionInterval: 20 })
  for (let i = 0; i < 50; i++) { clock = i * 100; await journal.append(event(i)) }
  // now 4900: entries before 3900 are past 1 s
  await waitUntil(() => journal.bounds().first === 40)
  t.equal(journal.bounds().first, 40, 'the oldest held is the first within the age')
  t.same((await journal.read(1, 1)).map(e => e.offset), [40], 'a read before it starts at it')
  const perEntry = journal.bounds().bytes / 11
  await journal.close()

  journal = await LevelJournal.open(where, { retention: { maxAgeMs: DAY, maxBytes: Math.floor(perEntry * 5.5) }, now: () => clock, retentionInterval: 20 })
  await waitUntil(() => journal.bounds().first === 46)
  t.same(journal.bounds(), { first: 46, last: 50, bytes: journal.bounds().bytes, appends: 0 }, 'by size: the newest five that fit in 5.5 entries')
  t.ok(journal.bounds().bytes <= perEntry * 5.5, 'bytes within maxBytes')
  await journal.close()

  clock = 10 * DAY
  journal = await LevelJournal.open(where, { retention: { maxAgeMs: 1000, maxBytes: 1e9 }, now: () => clock, retentionInterval: 20 })
  await waitUntil(() => journal.bounds().first === 51)
  t.same(journal.bounds(), { first: 51, last: 50, bytes: 0, appends: 0 }, 'everything past its age: empty')
  t.equal((await journal.append(event(99))).offset, 51, 'the next offset is still new')
  await journal.close()
})

t.test('durations and sizes as the configuration writes them', async t => {
  t.equal(parseDuration(90), 90_000)
  t.equal(parseDuration('90s'), 90_000)
  t.equal(parseDuration('12h'), 12 * 3_600_000)
  t.equal(parseDuration('7d'), 7 * DAY)
  t.equal(parseDuration('soon'), undefined)
  t.equal(parseDuration(0), undefined)
  t.equal(parseByteSize('1GiB'), 1024 ** 3)
  t.equal(parseByteSize('512MiB'), 512 * 1024 ** 2)
  t.equal(parseByteSize(4096), 4096)
  t.equal(parseByteSize('lots'), undefined)
})

async function waitUntil (check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000
  while (!check() && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
}

t.test('a QoS 2 packet id in flight: its retransmission is not appended again, across a reopen, until released', async t => {
  const where = await dir()
  let journal = await LevelJournal.open(where, { retention: { maxAgeMs: DAY, maxBytes: 1e9 } })
  const inFlight = { client: 'gerrit-bridge', packetId: 7 }
  const first = await journal.append(event(1), inFlight)
  t.equal((await journal.append(event(1), inFlight)).offset, first.offset, 'the retransmission gets the first offset')
  t.equal(journal.bounds().last, 1, 'and nothing new')
  t.equal((await journal.append(event(2), inFlight)).offset, 2, 'the same id with another message is a new message')
  await journal.close()
  journal = await LevelJournal.open(where, { retention: { maxAgeMs: DAY, maxBytes: 1e9 } })
  t.equal((await journal.append(event(2), inFlight)).offset, 2, 'still held after a restart')
  await journal.release('gerrit-bridge', 7)
  t.equal((await journal.append(event(2), inFlight)).offset, 3, 'released: the id is free for the next message')
  await journal.append(event(3), { client: 'gerrit-bridge', packetId: 8 })
  await journal.release('gerrit-bridge') // a clean session
  t.equal((await journal.append(event(3), { client: 'gerrit-bridge', packetId: 8 })).offset, 5, 'a clean session releases all of its ids')
  await journal.close()
})

t.test('pages read one after another go on where the last ended, and see what was appended since', async t => {
  const journal = await LevelJournal.open(await dir(), { retention: { maxAgeMs: DAY, maxBytes: 1e9 }, retentionInterval: 50 })
  t.teardown(() => journal.close())
  const offsets = (entries: Array<{ offset: number }>): number[] => entries.map(e => e.offset)
  const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
  await Promise.all(range(1, 600).map(async i => await journal.append(event(i))))
  t.same(offsets(await journal.read(1, 250)), range(1, 250))
  t.same(offsets(await journal.read(251, 250)), range(251, 500))
  // the iterator kept at 501 was opened before these
  await Promise.all(range(601, 610).map(async i => await journal.append(event(i))))
  t.same(offsets(await journal.read(501, 250)), range(501, 610), 'the ten appended since are read too')
  // two readers at once, each on its own way through; and a page read again from its start
  const [a, b] = await Promise.all([journal.read(1, 100), journal.read(301, 100)])
  t.same([offsets(a), offsets(b)], [range(1, 100), range(301, 400)])
  t.same(offsets(await journal.read(101, 100)), range(101, 200))
  t.same(offsets(await journal.read(1, 100)), range(1, 100))
})

t.test('an iterator kept across a retention pass does not hand back what it deleted', async t => {
  let clock = 1_000_000
  const journal = await LevelJournal.open(await dir(), { retention: { maxAgeMs: 10_000, maxBytes: 1e9 }, now: () => clock, retentionInterval: 20 })
  t.teardown(() => journal.close())
  await Promise.all(Array.from({ length: 200 }, async (_, i) => await journal.append(event(i + 1))))
  clock += 5_000
  await Promise.all(Array.from({ length: 200 }, async (_, i) => await journal.append(event(i + 201))))
  t.equal((await journal.read(1, 100)).at(-1)?.offset, 100, 'an iterator is kept at 101')
  clock += 7_000 // the first 200 are now past their age
  for (let i = 0; i < 200 && journal.bounds().first !== 201; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(journal.bounds().first, 201)
  const page = await journal.read(101, 100)
  t.same([page[0]?.offset, page.at(-1)?.offset], [201, 300], 'from the oldest entry held')
})
