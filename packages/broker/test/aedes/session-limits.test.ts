import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Aedes } from 'aedes'
import { memorySessionStore, openMemoryPersistence } from '../../src/aedes/memory-session-limits.js'
import { limitSessions, type SessionLimitStats } from '../../src/aedes/session-limits.js'
import { checkAedesPatches, packageDir } from '../../src/aedes/self-check.js'
import type { PatchedPackage } from '../../src/aedes/versions.js'
import { AedesUnderTest } from './harness.js'

// Contract of src/aedes/session-limits.ts and memory-session-limits.ts with Aedes 1.2 and
// aedes-persistence 11.0: the store compiled with its added methods; an offline session's queue
// trimmed to the limit, oldest first; the self-check refuses a store whose source moved. (A clean
// CONNECT's discard is tested against the broker, where the LevelDB store shows the bug:
// test/session-limits.test.ts. In memory Aedes' replay clears the old queue within the same
// turn, so the bug did not show there; the discard is there to keep the stores alike.)

async function start (max: number): Promise<{ aedes: AedesUnderTest, stats: SessionLimitStats }> {
  const stats: SessionLimitStats = { queuedDropped: 0, sessionsExpired: 0 }
  const persistence = openMemoryPersistence()
  const aedes = await AedesUnderTest.start({ persistence: persistence as never })
  const limits = await limitSessions(aedes.broker, memorySessionStore(aedes.broker, persistence), {
    maxQueuedMessages: max, expiryMs: { anonymous: false, user: false }, userOf: () => undefined, log: () => {}, stats
  })
  t.teardown(async () => { limits.close(); await aedes.close() })
  return { aedes, stats }
}

async function queueFor (aedes: AedesUnderTest, clientId: string, count: number): Promise<void> {
  const sub = await aedes.connect({ clientId, clean: false })
  await sub.subscribeAsync('q/#', { qos: 1 })
  await sub.endAsync()
  const pub = await aedes.connect()
  for (let i = 0; i < count; i++) await pub.publishAsync('q/x', String(i), { qos: 1 })
  await pub.endAsync()
}

async function received (aedes: AedesUnderTest, clientId: string, clean = false): Promise<string[]> {
  const got: string[] = []
  const c = await aedes.connect({ clientId, clean, resubscribe: false })
  c.on('message', (_topic, payload) => got.push(payload.toString()))
  await new Promise(resolve => setTimeout(resolve, 200))
  await c.endAsync()
  return got
}

t.test('an offline session keeps the newest `max`, in order; the rest counted', async t => {
  const { aedes, stats } = await start(5)
  await queueFor(aedes, 'offline', 12)
  t.same(await received(aedes, 'offline'), ['7', '8', '9', '10', '11'])
  t.equal(stats.queuedDropped, 7)
})

t.test('the self-check refuses an aedes-persistence whose MemoryPersistence no longer has the place for the added methods', async t => {
  const broker = await Aedes.createBroker()
  t.teardown(() => broker.close())
  const readSource = (pkg: PatchedPackage, file: string): string => {
    const text = readFileSync(join(packageDir(pkg), file), 'utf8')
    return pkg === 'aedes-persistence' ? text.replace('  outgoingStream (client) {', '  outgoingStream (client, options) {') : text
  }
  t.throws(() => checkAedesPatches(broker, { cluster: false, readSource }), /memory-session-limits\.ts \(written against aedes-persistence 11\.0, .*\): asyncPersistence\.js has no `outgoingStream \(client\) \{`/)
})
