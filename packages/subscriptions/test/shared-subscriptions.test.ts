import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { RedisJournal, type JournalEntry } from '@firehose/journal'
import { parseSubscriptionRequest, RedisSubscriptionStore, SubscriptionError, Subscriptions, type SubscriptionRequest } from '../src/index.js'
import { freePort } from '../../../test/helpers/ports.js'
import { RedisServer } from '../../../test/helpers/redis.js'

// Two cluster nodes sharing one journal and one set of subscriptions in Debian's redis-server:
// what one node creates, deletes or hands out, the other sees; pulls racing on both nodes
// never hand out an event twice.

const DAY = 86_400_000
const redis = await RedisServer.start(await freePort())
t.teardown(async () => { await redis.destroy() })
let keys = 0
const prefixMatch = (topics: readonly string[]) => (entry: JournalEntry) => topics.some(f => f.endsWith('/#') ? entry.topic.startsWith(f.slice(0, -1)) : entry.topic === f)
const request = (body: Record<string, unknown>): SubscriptionRequest => parseSubscriptionRequest({ name: 'ci', topics: ['gerrit/#'], ...body }, () => true, () => undefined)

async function cluster (t: Test): Promise<{ a: Subscriptions, b: Subscriptions, clock: { now: number }, publish: (topic: string, n: number) => Promise<void> }> {
  const n = ++keys
  // the nodes' clock (deadlines): the test moves it; the journal stamps by Redis' own
  const clock = { now: Date.now() }
  const connections: Redis[] = []
  const connect = (): Redis => {
    const db = new Redis(redis.url, { maxRetriesPerRequest: null })
    connections.push(db)
    return db
  }
  const node = async (name: string): Promise<{ journal: RedisJournal, subscriptions: Subscriptions }> => {
    const db = connect()
    const journal = await RedisJournal.open({ db, tail: connect(), retention: { maxAgeMs: DAY, maxBytes: 1e9 }, key: `journal-${n}` })
    const subscriptions = await Subscriptions.open({
      journal,
      store: new RedisSubscriptionStore({ db, node: name, key: `subscriptions-${n}` }),
      filterFor: (_owner, topics) => prefixMatch(topics),
      now: () => clock.now,
      admins: new Set(),
      log: () => {}
    })
    return { journal, subscriptions }
  }
  const [a, b] = [await node('a'), await node('b')]
  t.teardown(async () => {
    for (const { journal, subscriptions } of [a, b]) {
      await subscriptions.close()
      await journal.close()
    }
    for (const c of connections) c.disconnect()
  })
  return {
    a: a.subscriptions,
    b: b.subscriptions,
    clock,
    publish: async (topic, count) => {
      await Promise.all(Array.from({ length: count }, async (_, i) => await a.journal.append({ topic, payload: Buffer.from(String(i)), qos: 1, retain: false })))
    }
  }
}

t.test('made on one node, served by the other: pulled on B, acked on A, deleted on A and gone on B', async t => {
  const { a, b, publish } = await cluster(t)
  await a.create('alice', request({ ackDeadline: 600 }))
  const onB = await b.get('alice', 'ci') // not known on B yet: B looks in Redis before saying 404
  await publish('gerrit/change', 3)
  const pulled = await onB.pull(10)
  t.same(pulled.map(d => d.entry.offset), [1, 2, 3])
  const onA = await a.get('alice', 'ci')
  t.equal(await onA.ack([pulled[0]!.ackId, pulled[1]!.ackId]), 2, 'acked on the node that did not hand them out')
  t.equal(await onB.ack([pulled[0]!.ackId]), 0, 'and only once, on either')
  await onA.refresh()
  t.equal(onA.outstanding, 1)
  await t.rejects(a.create('bob', request({})), new SubscriptionError(409, 'name: a subscription "ci" exists (names are unique on the broker)'))
  await a.delete('alice', 'ci')
  await t.rejects(onB.pull(10), new SubscriptionError(404, 'no subscription "ci"'), 'B\'s handle answers "gone" at once')
  await b.sync()
  await t.rejects(b.get('alice', 'ci'), new SubscriptionError(404, 'no subscription "ci"'))
  t.same(b.list('alice'), [])
})

t.test('pulls racing on both nodes hand out each event once; redeliveries too', async t => {
  const { a, b, publish, clock } = await cluster(t)
  await a.create('alice', request({ ackDeadline: 60 }))
  const queues = [await a.get('alice', 'ci'), await b.get('alice', 'ci')]
  const appends = (async () => {
    for (let round = 0; round < 20; round++) {
      await publish('gerrit/change', 40)
      await publish('launchpad/bug', 10)
    }
  })()
  const seen = new Map<number, number>()
  const state = { appending: true }
  appends.then(() => { state.appending = false }, () => {})
  const pullers = queues.map(async queue => {
    for (let empty = 0; state.appending || empty < 3;) {
      const batch = await queue.pull(17)
      empty = batch.length === 0 ? empty + 1 : 0
      for (const d of batch) seen.set(d.entry.offset, (seen.get(d.entry.offset) ?? 0) + 1)
    }
  })
  await Promise.all([appends, ...pullers])
  t.equal(seen.size, 800, 'every gerrit event')
  t.same([...seen.values()].filter(n => n > 1), [], 'none twice')
  // nothing acked: after the deadline every event is due again, once, on whichever node pulls
  clock.now += 60_000
  const again = new Map<number, string>()
  await Promise.all(queues.map(async queue => {
    for (let batch = await queue.pull(50); batch.length > 0; batch = await queue.pull(50)) for (const d of batch) again.set(d.entry.offset, d.ackId)
  }))
  t.equal(again.size, 800)
  t.ok([...again.values()].every(id => id.endsWith('-2')), 'each the second delivery')
})
