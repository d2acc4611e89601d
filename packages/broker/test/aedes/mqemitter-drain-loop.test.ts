import { connect, type AddressInfo } from 'node:net'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { brokerInternals } from '../../src/aedes/internals.js'
import { drainWithoutRecursion } from '../../src/aedes/mqemitter-drain-loop.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/mqemitter-drain-loop.ts with mqemitter: a burst to a subscribed topic
// holds every delivery slot, and the thousands of publishes to a topic nobody subscribes to
// that follow in the same read wait in mqemitter's queue. Stock mqemitter drains that queue
// by recursion and the process dies of a stack overflow (this test then crashes); with the
// drain loop every message is handled, in order.

const SUBSCRIBED = 200
const UNSUBSCRIBED = 20000

t.test('a burst to a topic without subscribers behind one with subscribers is handled, not a stack overflow', async t => {
  const aedes = await AedesUnderTest.start()
  drainWithoutRecursion(brokerInternals(aedes.broker).mq)
  t.teardown(() => aedes.close())
  const sub = await aedes.connect()
  let delivered = 0
  sub.on('message', () => { delivered++ })
  await sub.subscribeAsync('a', { qos: 0 })
  let publishedA = 0
  const publishedB: number[] = []
  aedes.broker.on('publish', packet => {
    if (packet.topic === 'a') publishedA++
    if (packet.topic === 'b') publishedB.push(Number(packet.payload.toString()))
  })

  const socket = connect((aedes.server.address() as AddressInfo).port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  const connack = new Promise(resolve => socket.once('data', resolve))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'burst', clean: true, keepalive: 0 }))
  await connack
  socket.resume()
  const packets: Buffer[] = []
  for (let i = 0; i < SUBSCRIBED; i++) packets.push(mqttPacket.generate({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0, retain: false, dup: false }))
  for (let i = 0; i < UNSUBSCRIBED; i++) packets.push(mqttPacket.generate({ cmd: 'publish', topic: 'b', payload: Buffer.from(String(i)), qos: 0, retain: false, dup: false }))
  socket.write(Buffer.concat(packets))

  await until('every publish to be handled', () => publishedA === SUBSCRIBED && publishedB.length === UNSUBSCRIBED, 20000)
  await until('every delivery', () => delivered === SUBSCRIBED)
  t.ok(publishedB.every((n, i) => n === i), 'the waiting messages were handled in the order they came')
})
