import type { PublishPacket } from 'aedes'
import t from 'tap'
import { dropDeniedPublishes } from '../../src/aedes/drop-denied-publishes.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/drop-denied-publishes.ts with Aedes: a publish that authorizePublish
// marked as denied is acknowledged (PUBACK, PUBREC/PUBCOMP), reaches no subscriber, and the
// publisher stays connected. If Aedes stopped routing client publishes through
// broker.publish, the denied message would be delivered and this test fails.

t.test('a marked publish is acknowledged, dropped, and its client stays connected', async t => {
  const denied = new WeakSet<PublishPacket>()
  const aedes = await AedesUnderTest.start({
    authorizePublish: (_client, packet, callback) => {
      if (packet.topic.startsWith('denied/')) denied.add(packet)
      callback(null)
    }
  })
  dropDeniedPublishes(aedes.broker, denied)
  t.teardown(() => aedes.close())
  const sub = await aedes.connect()
  const got: string[] = []
  sub.on('message', topic => got.push(topic))
  await sub.subscribeAsync('#')
  const pub = await aedes.connect()
  await pub.publishAsync('denied/1', 'x', { qos: 1 })
  await pub.publishAsync('denied/2', 'x', { qos: 2 })
  await pub.publishAsync('denied/0', 'x', { qos: 0 })
  await pub.publishAsync('allowed/1', 'x', { qos: 1 })
  await until('the allowed message', () => got.includes('allowed/1'))
  t.same(got, ['allowed/1'], 'only the allowed message was delivered')
  t.equal(pub.connected, true, 'the publisher is still connected')
})
