import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { LevelJournal, RedisJournal, type Journal, type JournalEntry } from '@firehose/journal'
import { parseSubscriptionRequest, RedisSubscriptionStore, SpecError, SubscriptionError, Subscriptions, SubscriptionStore, type StartAt, type SubscriptionRequest } from '../src/index.js'
import { freePort } from '../../../test/helpers/ports.js'
import { RedisServer } from '../../../test/helpers/redis.js'

// Pull subscriptions on a real journal and a real store, with a clock the test moves: every
// case twice, on the broker's disk (LevelDB in temporary directories) and as a cluster node
// keeps them (the journal and the subscriptions in Debian's redis-server). On Redis the
// journal's timestamps come from Redis' clock, not the test's.

type Kind = 'disk' | 'redis'
const DAY = 86_400_000
const dir = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'firehose-subscriptions-'))
const validFilter = (filter: string): boolean => filter !== '' && !/[+#]./.test(filter)
const prefixMatch = (topics: readonly string[]) => (entry: JournalEntry) => topics.some(f => f === '#' || (f.endsWith('/#') ? entry.topic.startsWith(f.slice(0, -1)) : entry.topic === f))
const redis = await RedisServer.start(await freePort())
t.teardown(async () => { await redis.destroy() })
let keys = 0

interface SetUp {
  /** the store's own writes, as an older version of the broker left them (disk only) */
  writeRaw: (ops: Array<{ type: 'put', key: string, value: string } | { type: 'del', key: string }>) => Promise<void>
  journal: Journal
  open: () => Promise<Subscriptions>
  clock: { now: number }
  publish: (topic: string, n: number) => Promise<void>
  /** time passes between two appends: the journal's timestamps differ */
  gap: () => Promise<void>
  /** until `check` holds: a Redis journal announces appends from its tail, a moment later */
  until: (check: () => boolean) => Promise<void>
}

async function setUp (t: Test, kind: Kind): Promise<SetUp> {
  const opened: Subscriptions[] = []
  const connections: Redis[] = []
  const connect = (): Redis => {
    const db = new Redis(redis.url, { maxRetriesPerRequest: null })
    connections.push(db)
    return db
  }
  let journal: Journal
  let clock: { now: number }
  let store: () => Promise<SubscriptionStore | RedisSubscriptionStore>
  let writeRaw: SetUp['writeRaw'] = async () => { throw new Error('disk only') }
  if (kind === 'disk') {
    clock = { now: 1_800_000_000_000 }
    const fixed = clock
    journal = await LevelJournal.open(await dir(), { retention: { maxAgeMs: 30 * DAY, maxBytes: 1e9 }, now: () => fixed.now })
    const storeDir = await dir()
    store = async () => await SubscriptionStore.open(storeDir)
    writeRaw = async ops => {
      const raw = await SubscriptionStore.open(storeDir)
      await raw.write(ops)
      await raw.close()
    }
  } else {
    // the queue's clock starts at Redis' own (the same machine's): entries are not in its past
    clock = { now: Date.now() }
    const n = ++keys
    journal = await RedisJournal.open({ db: connect(), tail: connect(), retention: { maxAgeMs: 30 * DAY, maxBytes: 1e9 }, key: `journal-${n}` })
    // each open a node of its own: a new connection, the same keys
    store = async () => new RedisSubscriptionStore({ db: connect(), node: `node-${opened.length}`, key: `subscriptions-${n}` })
  }
  t.teardown(async () => {
    for (const s of opened) await s.close().catch(() => {})
    await journal.close()
    for (const c of connections) c.disconnect()
  })
  return {
    writeRaw,
    journal,
    clock,
    open: async () => {
      const s = await Subscriptions.open({ journal, store: await store(), now: () => clock.now, filterFor: (_owner, topics) => prefixMatch(topics), admins: new Set(['root']), log: () => {} })
      opened.push(s)
      return s
    },
    publish: async (topic, n) => {
      for (let i = 0; i < n; i++) await journal.append({ topic, payload: Buffer.from(`{"i":${i}}`), qos: 1, retain: false, json: true })
    },
    gap: async () => {
      if (kind === 'disk') clock.now += 60_000
      else await new Promise(resolve => setTimeout(resolve, 20))
    },
    until: async check => {
      const deadline = Date.now() + 10_000
      while (!check()) {
        if (Date.now() > deadline) throw new Error('timed out')
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    }
  }
}

const request = (body: Record<string, unknown>): SubscriptionRequest => parseSubscriptionRequest({ name: 'ci', topics: ['gerrit/#'], ...body }, validFilter, parseStart)
const parseStart = (text: string): StartAt | undefined => Number.isNaN(Date.parse(text)) ? undefined : { timestamp: Date.parse(text) }
const offsets = (deliveries: Array<{ entry: JournalEntry }>): number[] => deliveries.map(d => d.entry.offset)

for (const kind of ['disk', 'redis'] as const) t.test(`kept on ${kind}`, async t => { cases(t, kind) })

function cases (t: Test, kind: Kind): void {
  t.test('a pull subscription gets what is published after it, acked once, unacked again after its deadline', async t => {
    const { open, publish, clock } = await setUp(t, kind)
    const subscriptions = await open()
    await publish('gerrit/early', 2) // before: not for it
    const queue = await subscriptions.create('alice', request({ ackDeadline: 30 }))
    await publish('gerrit/change', 5)
    await publish('launchpad/bug', 3) // not its topics
    const first = await queue.pull(3)
    t.same(offsets(first), [3, 4, 5])
    t.same(first.map(d => d.ackId), ['3-1', '4-1', '5-1'])
    t.equal(await queue.ack(['3-1', '4-1', '3-1', 'nonsense']), 2, 'each current delivery once; repeats and garbage ack nothing')
    t.same(offsets(await queue.pull(10)), [6, 7], 'the rest; not the launchpad events')
    t.same(await queue.pull(10), [], 'nothing more, nothing early')
    clock.now += 30_000
    const again = await queue.pull(10)
    t.same(again.map(d => d.ackId), ['5-2', '6-2', '7-2'], 'unacked ones come back after the deadline, oldest first')
    t.equal(await queue.ack(['5-1']), 0, 'the first delivery\'s ack id is stale now')
    t.equal(await queue.nack(['6-2']), 1)
    t.same((await queue.pull(10)).map(d => d.ackId), ['6-3'], 'a nacked event is due at once')
    t.same(queue.counters, { delivered: 9, redelivered: 4, acked: 2, nacked: 1, deadLettered: 0, expired: 0, pushOk: 0, pushFailed: 0 })
    t.equal(queue.state.spec.maxDeliveries, 10, 'the pull default')
  })

  t.test('its state survives a restart: what was acked is not delivered again, what was not comes back', async t => {
    const { open, publish, clock } = await setUp(t, kind)
    const before = await open()
    const queue = await before.create('alice', request({ ackDeadline: 10 }))
    await publish('gerrit/change', 6)
    const pulled = await queue.pull(4)
    await queue.ack(pulled.slice(0, 2).map(d => d.ackId))
    await before.close()
    const after = await open()
    const reopened = await after.get('alice', 'ci')
    t.same(offsets(await reopened.pull(10)), [5, 6], 'new ones, not the leased ones before their deadline')
    clock.now += 10_000
    t.same((await reopened.pull(10)).map(d => d.ackId), ['3-2', '4-2', '5-2', '6-2'])
  })

  if (kind === 'disk') {
    t.test('leases are kept one record per pull; a lease record from before batches is read and settled', async t => {
      const { open, publish, clock, writeRaw } = await setUp(t, kind)
      const before = await open()
      const queue = await before.create('alice', request({ ackDeadline: 10 }))
      await publish('gerrit/change', 8)
      await queue.pull(3) // 1-3: one record
      const second = await queue.pull(3) // 4-6: another
      await queue.ack([second[1]!.ackId]) // 5 acked: the record rewritten without it
      t.same(offsets(await queue.pull(1)), [7], 'a third record, batch 3')
      await before.close()
      // 7's lease as a broker before lease batches wrote it: a record of its own, keyed by its offset
      await writeRaw([
        { type: 'del', key: 'l!ci!0000000000000003' },
        { type: 'put', key: 'l!ci!0000000000000007', value: JSON.stringify({ deliveries: 1, deadline: clock.now + 10_000 }) }
      ])
      const after = await open()
      const reopened = await after.get('alice', 'ci')
      t.equal(reopened.outstanding, 6, '1-3, 4, 6 and 7')
      clock.now += 10_000
      const again = await reopened.pull(10)
      t.same(again.map(d => d.ackId), ['1-2', '2-2', '3-2', '4-2', '6-2', '7-2', '8-1'])
      t.equal(await reopened.ack(again.map(d => d.ackId)), 7)
      await after.close()
      const last = await (await open()).get('alice', 'ci')
      t.equal(last.outstanding, 0, 'every record settled on disk, the old one too')
      clock.now += 10_000
      t.same(await last.pull(10), [])
    })
  }

  t.test('after maxDeliveries an event goes to the dead letters, and can be replayed from there', async t => {
    const { open, publish, clock } = await setUp(t, kind)
    const queue = await (await open()).create('alice', request({ ackDeadline: 1, maxDeliveries: 2 }))
    await publish('gerrit/change', 1)
    t.same(offsets(await queue.pull(1)), [1])
    clock.now += 1000
    t.same((await queue.pull(1)).map(d => d.ackId), ['1-2'])
    clock.now += 1000
    t.same(await queue.pull(1), [], 'not a third time')
    const letters = await queue.deadLetters()
    t.same(letters.map(([offset]) => offset), [1])
    t.match(letters[0]?.[1], { deliveries: 2, reason: /maxDeliveries/ })
    t.equal(await queue.replayDeadLetters(), 1)
    t.same((await queue.pull(1)).map(d => d.ackId), ['1-1'], 'back as if never delivered')
    t.equal(queue.counters.deadLettered, 1)
  })

  t.test('ordered: one event in flight at a time, in journal order', async t => {
    const { open, publish, clock } = await setUp(t, kind)
    const queue = await (await open()).create('alice', request({ ordered: true, ackDeadline: 5 }))
    await publish('gerrit/change', 3)
    const [one] = await queue.pull(10)
    t.equal(one?.entry.offset, 1)
    t.same(await queue.pull(10), [], 'nothing while 1 is unacked')
    clock.now += 5000
    t.same((await queue.pull(10)).map(d => d.ackId), ['1-2'], 'the same one again, not 2')
    await queue.ack(['1-2'])
    t.same(offsets(await queue.pull(10)), [2])
  })

  t.test('seek and start points: earliest, an offset, a time; seek forgets what was outstanding', async t => {
    const { open, publish, gap, journal } = await setUp(t, kind)
    const subscriptions = await open()
    await publish('gerrit/change', 3)
    await gap()
    await publish('gerrit/change', 3)
    const fourth = (await journal.read(4, 1))[0]!.timestamp
    t.same(offsets(await (await subscriptions.create('alice', request({ name: 'a', startAt: 'earliest' }))).pull(10)), [1, 2, 3, 4, 5, 6])
    t.same(offsets(await (await subscriptions.create('alice', request({ name: 'b', startAt: 5 }))).pull(10)), [5, 6])
    t.same(offsets(await (await subscriptions.create('alice', request({ name: 'c', startAt: new Date(fourth).toISOString() }))).pull(10)), [4, 5, 6])
    const queue = await subscriptions.get('alice', 'a')
    await queue.seek(await subscriptions.startOffset({ offset: 2 }))
    t.equal(queue.outstanding, 0)
    t.same(offsets(await queue.pull(10)), [2, 3, 4, 5, 6])
  })

  t.test('events older than the subscription\'s retention are dropped unacked, and counted', async t => {
    const { open, publish, clock } = await setUp(t, kind)
    const queue = await (await open()).create('alice', request({ retentionDays: 1, ackDeadline: 60 }))
    await publish('gerrit/change', 2)
    t.same(offsets(await queue.pull(1)), [1])
    clock.now += DAY + 60_000 // a Redis journal stamps by its own clock, a few ms after the test's started
    t.same(await queue.pull(10), [], 'both are older than a day: neither delivered')
    t.equal(queue.counters.expired, 1, 'the leased one counted as expired when it came due')
  })

  t.test('ownership: a user sees and manages only their own; an admin all; names are unique', async t => {
    const { open } = await setUp(t, kind)
    const subscriptions = await open()
    await subscriptions.create('alice', request({ name: 'mine' }))
    await t.rejects(subscriptions.create('bob', request({ name: 'mine' })), new SubscriptionError(409, 'name: a subscription "mine" exists (names are unique on the broker)'))
    t.same(subscriptions.list('bob'), [])
    await t.rejects(subscriptions.get('bob', 'mine'), new SubscriptionError(404, 'no subscription "mine"'))
    await t.rejects(subscriptions.delete('bob', 'mine'), new SubscriptionError(404, 'no subscription "mine"'))
    t.same(subscriptions.list('root').map(q => q.name), ['mine'])
    await subscriptions.delete('root', 'mine')
    t.same(subscriptions.list('alice'), [])
    // deleted from the store too
    await subscriptions.close()
    t.same((await open()).list('root'), [])
  })

  t.test('a creation request is checked field by field', async t => {
    const bad: Array<[unknown, RegExp]> = [
      [[], /\(body\): expected a JSON object/],
      [{ topics: ['a'] }, /^name: /],
      [{ name: 'x/y', topics: ['a'] }, /^name: letters, digits/],
      [{ name: 'x', topics: [] }, /^topics: at least one MQTT topic filter/],
      [{ name: 'x', topics: ['a/#/b'] }, /^topics\[0\]: "a\/#\/b" is not an MQTT topic filter/],
      [{ name: 'x', topics: ['a'], type: 'carrier-pigeon' }, /^type: /],
      [{ name: 'x', topics: ['a'], type: 'push' }, /^push: a push subscription needs \{ "endpoint": URL \}/],
      [{ name: 'x', topics: ['a'], type: 'push', push: { endpoint: 'ftp://x/y' } }, /^push\.endpoint: "ftp:\/\/x\/y" is not an http:\/\/ or https:\/\/ URL/],
      [{ name: 'x', topics: ['a'], push: { endpoint: 'https://x/y' } }, /^push: only for "type": "push"/],
      [{ name: 'x', topics: ['a'], ackDeadline: 0 }, /^ackDeadline: /],
      [{ name: 'x', topics: ['a'], startAt: 'yesterday-ish' }, /^startAt: "yesterday-ish" is not "now", "earliest", an offset or an ISO 8601 date/],
      [{ name: 'x', topics: ['a'], colour: 'blue' }, /unknown key "colour"/]
    ]
    for (const [body, message] of bad) {
      t.throws(() => parseSubscriptionRequest(body, validFilter, parseStart), { constructor: SpecError, message }, JSON.stringify(body))
    }
    t.same(request({}).spec, { name: 'ci', topics: ['gerrit/#'], type: 'pull', ackDeadlineMs: 60_000, retentionMs: 7 * DAY, ordered: false })
  })

  t.test('the live tail: pulls racing appends get each event of theirs once, in journal order', async t => {
    const { open, journal } = await setUp(t, kind)
    const queue = await (await open()).create('alice', request({ ackDeadline: 600 }))
    const got: number[] = []
    const expected: number[] = []
    const state = { appending: true }
    const appends = (async () => {
      for (let round = 0; round < 40; round++) {
        // 50 at once: announced in group-commit batches, some while a pull is reading
        const entries = await Promise.all(Array.from({ length: 50 }, async (_, i) =>
          await journal.append({ topic: (round + i) % 3 === 0 ? 'launchpad/bug' : 'gerrit/change', payload: Buffer.from('{}'), qos: 1, retain: false, json: true })))
        for (const entry of entries) if (entry.topic.startsWith('gerrit/')) expected.push(entry.offset)
        await new Promise(resolve => setImmediate(resolve))
      }
      state.appending = false
    })()
    while (state.appending) got.push(...offsets(await queue.pull(7)))
    await appends
    for (let batch = await queue.pull(100); batch.length > 0; batch = await queue.pull(100)) got.push(...offsets(batch))
    t.equal(got.length, expected.length)
    t.same(got, expected.sort((a, b) => a - b), 'each once, in order')
  })

  t.test('totals: events triggered and stored per subscription as they are appended; lost when the journal fails them', async t => {
    const { open, publish, until } = await setUp(t, kind)
    const subscriptions = await open()
    await subscriptions.create('alice', request({ name: 'a', topics: ['gerrit/#'] }))
    await subscriptions.create('bob', request({ name: 'b', topics: ['gerrit/change'] }))
    await publish('gerrit/change', 2) // both
    await publish('gerrit/other', 1) // a only
    await publish('launchpad/bug', 1) // neither
    await until(() => subscriptions.totals.storeOk === 5)
    subscriptions.appendFailed('gerrit/change') // would have reached both
    subscriptions.appendFailed('launchpad/bug') // would have reached none: not lost
    t.same(subscriptions.totals, { eventTriggered: 3, eventLost: 1, storeOk: 5, storeFailed: 2 })
  })
}
