import { mkdtemp } from 'node:fs/promises'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import t from 'tap'
import { openLevelStore } from '@firehose/runtime'
import { tidyLevelStore } from '../../src/aedes/tidy-level-store.js'
import { openLevelSessionStore } from '../../src/store.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/tidy-level-store.ts with Aedes 1.2 and aedes-persistence-level 9.2: a
// clean client, and a socket closed before CONNECT, cost the session store no range scan; a
// persistent session's queue, subscriptions and QoS 2 records are still found — across a
// reopen, where they are known from the keys alone; and many deleted keys start a compaction.

const require = createRequire(import.meta.url)
const dir = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'firehose-tidy-'))

t.test('a clean client and a socket closed before CONNECT make no range scan; a persistent session is served in full, across a reopen', async t => {
  const path = await dir()
  const first = await openLevelSessionStore(path, 'test')
  let aedes = await AedesUnderTest.start({ persistence: first.persistence as never })
  const scans = first.tidy.rangesSkipped

  const clean = await aedes.connect({ clientId: 'clean-one', clean: true })
  await clean.endAsync()
  await until('the clean client gone', () => aedes.broker.connectedClients === 0)
  // CONNECT: cleanSubscriptions, cleanIncoming, outgoingStream; close: cleanIncoming
  t.equal(first.tidy.rangesSkipped - scans, 4, 'a clean client: none of its four range scans made')

  const bare = netConnect((aedes.server.address() as { port: number }).port, '127.0.0.1', () => bare.destroy())
  await until('the bare socket counted', () => first.tidy.rangesSkipped - scans === 5)
  t.pass('a socket closed before CONNECT: no range scan')

  // a persistent session with a subscription, a queued message, and (as publisher) a QoS 2 record
  const persistent = await aedes.connect({ clientId: 'kept', clean: false })
  await persistent.subscribeAsync('q/#', { qos: 1 })
  await persistent.endAsync()
  const pub = await aedes.connect({ clientId: 'pub' })
  await pub.publishAsync('q/1', 'queued', { qos: 1 })
  await pub.endAsync()
  await aedes.close()
  await first.persistence.destroy()

  // reopened: what the session has is known from the store's keys
  const second = await openLevelSessionStore(path, 'test')
  aedes = await AedesUnderTest.start({ persistence: second.persistence as never })
  t.teardown(async () => { await aedes.close(); await second.persistence.destroy() })
  const got: string[] = []
  const back = await aedes.connect({ clientId: 'kept', clean: false, resubscribe: false })
  back.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
  await until('the queued message', () => got.length === 1)
  t.same(got, ['q/1 queued'], 'the queue, kept across the reopen')
  const pub2 = await aedes.connect({ clientId: 'pub' })
  await pub2.publishAsync('q/2', 'live', { qos: 1 })
  await until('the live message', () => got.length === 2)
  t.same(got, ['q/1 queued', 'q/2 live'], 'and the subscription')
  await back.endAsync()
  // a clean CONNECT under that id clears the stored subscription (it made the scan)
  const before = second.tidy.rangesSkipped
  await (await aedes.connect({ clientId: 'kept', clean: true })).endAsync()
  t.ok(second.tidy.rangesSkipped - before < 4, 'the id with a stored session was looked up')
  await pub2.publishAsync('q/3', 'after clean', { qos: 1 })
  const again = await aedes.connect({ clientId: 'kept', clean: false })
  const late: string[] = []
  again.on('message', topic => late.push(topic))
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(late, [], 'the subscription went with the clean session')
})

t.test('many deleted keys start a compaction of the store, logged', async t => {
  const db = await openLevelStore<Buffer>(await dir(), 'buffer', { key: 'test', user: 'test', source: 'test' })
  const AsyncLevelPersistence = require('aedes-persistence-level/asyncPersistence.js') as new (db: unknown) => Record<string, (...args: unknown[]) => Promise<unknown>>
  const persistence = new AsyncLevelPersistence(db)
  await persistence.setup!({ id: 'b' })
  const logged: Array<[string, Record<string, unknown>]> = []
  const stats = await tidyLevelStore(persistence, db, { compactAfterDeletes: 20, log: (event, fields) => logged.push([event, fields]) })
  for (let i = 1; i <= 10; i++) {
    const packet = { cmd: 'publish', topic: 't', payload: Buffer.from('x'), qos: 1, retain: false, dup: false, brokerId: 'b', brokerCounter: i, messageId: i }
    await persistence.outgoingEnqueue!({ clientId: 'c' }, packet)
    await persistence.outgoingUpdate!({ id: 'c' }, packet)
    await persistence.outgoingClearMessageId!({ id: 'c' }, { messageId: i })
  }
  await until('the compaction', () => stats.compactions === 1)
  t.match(logged, [['store.compacted', { deletedKeys: 20 }]])
  await db.close()
})
