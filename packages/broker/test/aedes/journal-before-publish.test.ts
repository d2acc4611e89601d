import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PublishPacket } from 'aedes'
import { connect } from 'mqtt'
import { pino } from 'pino'
import t from 'tap'
import { LevelJournal, type Journal } from '@firehose/journal'
import { brokerInternals } from '../../src/aedes/internals.js'
import { journalBeforePublish } from '../../src/aedes/journal-before-publish.js'
import { recordQos2AfterPublish } from '../../src/aedes/record-qos2-after-publish.js'
import type { Session } from '../../src/hooks/context.js'
import { BrokerStats } from '../../src/observability/stats.js'
import { openLevelPersistence } from '../../src/store.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/journal-before-publish.ts with Aedes: what a publisher is acknowledged
// for is in the journal; a QoS 2 message whose first publish never completed (the broker died
// between the journal append and the PUBREC: here that publish is swallowed) is published when
// the client retransmits it, and journaled once. The second test drops the packet id from the
// append, and the journal has it twice: what the in-flight id is for.

const DAY = 86_400_000

async function retransmitted (withPacketIds: boolean): Promise<{ journaled: string[], delivered: string[] }> {
  const persistence = await openLevelPersistence(await mkdtemp(join(tmpdir(), 'firehose-contract-')), 'test')
  const journal: Journal = await LevelJournal.open(await mkdtemp(join(tmpdir(), 'firehose-journal-')), { retention: { maxAgeMs: DAY, maxBytes: 1e9 } })
  if (!withPacketIds) {
    const append = journal.append.bind(journal)
    journal.append = async entry => await append(entry)
  }
  const aedes = await AedesUnderTest.start({ persistence: persistence as never, published: recordQos2AfterPublish(persistence) })
  // the broker "dies" inside the first publish of 'x': never completes, never acknowledged
  const internals = brokerInternals(aedes.broker)
  const publish = internals.publish.bind(aedes.broker)
  let swallowed = false
  internals.publish = (packet: PublishPacket, client, done) => {
    if (!swallowed && String(packet.payload) === 'x') {
      swallowed = true
      return
    }
    publish(packet, client, done)
  }
  journalBeforePublish(aedes.broker, { journal, topics: ['#'], sessions: new WeakMap<never, Session>(), stats: new BrokerStats(), logger: pino({ level: 'silent' }) })
  try {
    const reader = await aedes.connect()
    const delivered: string[] = []
    reader.on('message', (_topic, payload) => delivered.push(payload.toString()))
    await reader.subscribeAsync('j/#', { qos: 2 })
    const writer = connect(aedes.url, { clientId: 'writer', clean: false, reconnectPeriod: 100 })
    writer.on('error', () => {})
    await new Promise(resolve => writer.once('connect', resolve))
    const acknowledged = writer.publishAsync('j/x', 'x', { qos: 2 })
    await until('the first append', () => journal.bounds().last === 1)
    // the connection drops; mqtt.js reconnects and sends the PUBLISH again, same packet id
    ;(writer as unknown as { stream: { destroy: () => void } }).stream.destroy()
    await acknowledged
    await writer.publishAsync('j/y', 'y', { qos: 2 }) // the next message, after PUBREL released 'x''s id
    await until('both delivered', () => delivered.length >= 2)
    await writer.endAsync()
    const entries = await journal.read(1, 10)
    return { journaled: entries.map(e => e.payload.toString()), delivered }
  } finally {
    await aedes.close()
    await journal.close()
  }
}

t.test('a QoS 2 retransmission after a publish that never completed is published and journaled once', async t => {
  const { journaled, delivered } = await retransmitted(true)
  t.same(delivered, ['x', 'y'], 'delivered once each')
  t.same(journaled, ['x', 'y'], 'journaled once each')
})

t.test('without the packet id the journal has it twice (what the in-flight id is for)', async t => {
  const { journaled } = await retransmitted(false)
  t.same(journaled, ['x', 'x', 'y'], 'the retransmission journaled again')
})
