import { connect as netConnect, type AddressInfo } from 'node:net'
import t from 'tap'
import { ProtocolViolation, StrictPackets } from '../../src/aedes/strict-packets.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/strict-packets.ts with Aedes 1.2 and its mqtt-packet 9.0 parser: on a
// client's parser, bad strings and the protocol's other leniencies become a ProtocolViolation
// that Aedes reports and closes the connection for; an unknown protocol level reaches Aedes,
// which answers CONNACK 1. If Aedes stopped using `client._parser`, or mqtt-packet renamed
// what the patch overrides, these fail.

async function exchange (aedes: AedesUnderTest, bytes: Buffer): Promise<{ replies: Buffer, closed: boolean }> {
  const socket = netConnect((aedes.server.address() as AddressInfo).port, '127.0.0.1')
  const chunks: Buffer[] = []
  let closed = false
  socket.on('data', d => chunks.push(d))
  socket.on('close', () => { closed = true })
  socket.on('error', () => {})
  await new Promise(resolve => socket.once('connect', resolve))
  socket.write(bytes)
  await until('the connection closed', () => closed)
  return { replies: Buffer.concat(chunks), closed }
}

t.test('Aedes closes the connection for what the patched parser refuses, and reports it as a ProtocolViolation', async t => {
  const strict = new StrictPackets()
  const aedes = await AedesUnderTest.start({}, () => client => { strict.install(client) })
  t.teardown(() => aedes.close())
  const errors: Error[] = []
  aedes.broker.on('connectionError', (_client, err) => errors.push(err))
  aedes.broker.on('clientError', (_client, err) => errors.push(err))

  // CONNECT, MQTT 3.1.1, clean session, client id "c\xc3" (a truncated sequence)
  const badId = Buffer.from('100e00044d5154540402003c0002' + '63c3', 'hex')
  t.same((await exchange(aedes, badId)).replies, Buffer.alloc(0), 'no CONNACK')
  t.ok(errors.at(-1) instanceof ProtocolViolation)
  t.match(errors.at(-1)?.message, /not well-formed UTF-8/)

  // the same CONNECT at protocol level 9: Aedes answers CONNACK 1
  const level9 = Buffer.from('100e00044d5154540902003c0002' + '6363', 'hex')
  t.same((await exchange(aedes, level9)).replies, Buffer.from('20020001', 'hex'), 'CONNACK 1')

  // a good CONNECT, then PUBLISH QoS 1 with packet id 0
  const connect = Buffer.from('100e00044d5154540402003c0002' + '6364', 'hex')
  const publish = Buffer.from('3206' + '000161' + '0000' + '78', 'hex')
  const { replies } = await exchange(aedes, Buffer.concat([connect, publish]))
  // (the CONNACK may or may not be written before the close: Aedes answers a turn later)
  t.notOk(replies.includes(Buffer.from('4002', 'hex')), 'no PUBACK')
  t.match(errors.at(-1)?.message, /packet id 0/)
})

t.test('without the patch, the parser lets the same bytes through (what the patch is for)', async t => {
  const aedes = await AedesUnderTest.start()
  t.teardown(() => aedes.close())
  const level9 = Buffer.from('100e00044d5154540902003c0002' + '6363', 'hex')
  t.same((await exchange(aedes, level9)).replies, Buffer.alloc(0), 'stock: closed without CONNACK')
})
