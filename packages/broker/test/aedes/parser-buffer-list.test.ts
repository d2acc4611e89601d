import { connect as netConnect, type AddressInfo } from 'node:net'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { ParserBufferList } from '../../src/aedes/parser-buffer-list.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/parser-buffer-list.ts with Aedes 1.2 and its mqtt-packet 9.0 parser:
// each client's parser keeps its unparsed bytes in a plain BufferList instead of a stream. If
// the parser used something of its list the BufferList lacks, or stopped reading `_list`,
// packets cut into pieces (each piece parsed apart, the rest kept in the list) would not
// arrive whole and this fails.

t.test('a client\'s parser keeps its bytes in a plain list, and packets cut byte by byte arrive whole', async t => {
  const lists = new ParserBufferList()
  const parsers: Array<{ _list: unknown }> = []
  const aedes = await AedesUnderTest.start({}, () => client => {
    lists.install(client)
    parsers.push((client as unknown as { _parser: { _list: unknown } })._parser)
  })
  t.teardown(() => aedes.close())
  const sub = await aedes.connect({ clientId: 'reader' })
  const got: string[] = []
  sub.on('message', (topic, payload) => got.push(`${topic} ${payload.length}`))
  await sub.subscribeAsync('cut/#', { qos: 0 })
  const list = parsers[0]?._list as Record<string, unknown>
  t.ok(typeof list.append === 'function' && !('_readableState' in list) && typeof list.pipe !== 'function', 'a list, not a stream')

  const socket = netConnect((aedes.server.address() as AddressInfo).port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise(resolve => socket.once('connect', resolve))
  const bytes = Buffer.concat([
    mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'cutter', keepalive: 0 }),
    mqttPacket.generate({ cmd: 'publish', topic: 'cut/small', payload: Buffer.alloc(10, 1), qos: 0, retain: false, dup: false }),
    // a remaining length of three bytes
    mqttPacket.generate({ cmd: 'publish', topic: 'cut/large', payload: Buffer.alloc(20000, 2), qos: 1, messageId: 7, retain: false, dup: false })
  ])
  const acks: Buffer[] = []
  socket.on('data', d => acks.push(d))
  // one byte per write for the first 300 bytes, then the rest in one
  for (let i = 0; i < 300; i++) {
    socket.write(bytes.subarray(i, i + 1))
    await new Promise(resolve => setImmediate(resolve))
  }
  socket.write(bytes.subarray(300))
  await until('both messages', () => got.length === 2)
  t.same(got, ['cut/small 10', 'cut/large 20000'])
  await until('the PUBACK', () => Buffer.concat(acks).includes(Buffer.from([0x40, 0x02, 0x00, 0x07])))
  socket.destroy()
})
