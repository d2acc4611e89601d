import { Redis } from 'ioredis'
import t from 'tap'
import { RedisJournal, type JournalEntry, type NewEntry } from '../src/index.js'
import { freePort } from '../../../test/helpers/ports.js'
import { RedisServer } from '../../../test/helpers/redis.js'

// The cluster's journal on Debian's redis-server: two nodes append to one stream and see the
// same offsets and history; each node's followers get every node's appends in order; retention
// by size and age; offsets survive a reopen and a Redis restart.

const DAY = 86_400_000
const redis = await RedisServer.start(await freePort())
t.teardown(() => redis.destroy())
const event = (i: number, size = 10): NewEntry => ({ topic: `gerrit/e/${i}`, payload: Buffer.from(`${i}`.padEnd(size, '.')), qos: 2, retain: false, user: 'gerrit' })

async function node (key: string, retention = { maxAgeMs: DAY, maxBytes: 1e9 }, retentionInterval = 1000): Promise<{ journal: RedisJournal, close: () => Promise<void> }> {
  const db = new Redis(redis.url, { maxRetriesPerRequest: null })
  const tail = new Redis(redis.url, { maxRetriesPerRequest: null })
  const journal = await RedisJournal.open({ db, tail, retention, key, retentionInterval })
  return { journal, close: async () => { await journal.close(); db.disconnect() } }
}

async function until (check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('two nodes share one journal: offsets from one counter, every append followed on both', async t => {
  const a = await node('j1')
  const b = await node('j1')
  t.teardown(async () => { await a.close(); await b.close() })
  const seenOnA: number[] = []
  a.journal.onAppended(entries => seenOnA.push(...entries.map(e => e.offset)))
  const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => await (i % 2 === 0 ? a : b).journal.append(event(i))))
  t.same(results.map(r => r.offset).sort((x, y) => x - y), Array.from({ length: 200 }, (_, i) => i + 1), 'every offset once')
  await until(() => seenOnA.length === 200)
  t.same(seenOnA, Array.from({ length: 200 }, (_, i) => i + 1), 'a follows b\'s appends too, in offset order')
  const fromA = await a.journal.read(1, 500)
  const fromB = await b.journal.read(1, 500)
  t.same(fromA, fromB, 'the same history on both')
  t.ok(fromA.every((e, i) => i === 0 || e.timestamp >= fromA[i - 1]!.timestamp), 'timestamps never decrease (Redis\' clock)')
  const one = fromA[10]!
  t.same({ ...one, payload: one.payload.toString() }, { ...results.find(r => r.offset === one.offset)!, payload: one.payload.toString() } as JournalEntry & { payload: string }, 'what append returned is what is stored')
  t.equal(await b.journal.offsetAt(fromA[150]!.timestamp), fromA.find(e => e.timestamp === fromA[150]!.timestamp)!.offset, 'offsetAt by time')
})

t.test('retention by size and by age, one pass for all nodes; offsets go on after a reopen and a Redis restart', async t => {
  let a = await node('j2', { maxAgeMs: DAY, maxBytes: 10_000 }, 50)
  for (let i = 0; i < 100; i++) await a.journal.append(event(i, 500))
  await until(() => a.journal.bounds().first > 1 && a.journal.bounds().bytes <= 10_000)
  const { first, last, bytes } = a.journal.bounds()
  t.equal(last, 100)
  t.ok(bytes <= 10_000 && last - first + 1 >= 15, `the newest within maxBytes: ${first}..${last}, ${bytes} bytes`)
  t.equal((await a.journal.read(1, 1))[0]!.offset, first, 'a read before the oldest starts at it')
  await a.close()

  await redis.kill() // a crash: what it acknowledged is in its append-only file
  await redis.restart()
  a = await node('j2', { maxAgeMs: 1, maxBytes: 1e9 }, 50)
  await until(() => a.journal.bounds().first === 101)
  t.same({ ...a.journal.bounds(), appends: 0 }, { first: 101, last: 100, bytes: 0, appends: 0 }, 'everything past its age: empty')
  t.equal((await a.journal.append(event(1))).offset, 101, 'the next offset is still new, after a Redis restart')
  await a.close()
})

t.test('a QoS 2 packet id in flight is held for every node: a retransmission to another node is not appended again', async t => {
  const a = await node('j3')
  const b = await node('j3')
  t.teardown(async () => { await a.close(); await b.close() })
  const inFlight = { client: 'gerrit-bridge', packetId: 7 }
  const first = await a.journal.append(event(1), inFlight)
  t.equal((await b.journal.append(event(1), inFlight)).offset, first.offset, 'the retransmission on b gets a\'s offset')
  t.equal((await b.journal.read(1, 10)).length, 1, 'and nothing new')
  t.equal((await b.journal.append(event(2), inFlight)).offset, 2, 'the same id with another message is a new message')
  await b.journal.release('gerrit-bridge', 7)
  t.equal((await a.journal.append(event(2), inFlight)).offset, 3, 'released on b: free on a')
  await a.journal.append(event(3), { client: 'gerrit-bridge', packetId: 8 })
  await b.journal.release('gerrit-bridge')
  t.equal((await a.journal.append(event(3), { client: 'gerrit-bridge', packetId: 8 })).offset, 5, 'a clean session releases all of its ids')
})
