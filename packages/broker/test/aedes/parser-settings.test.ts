import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { ParserSettings } from '../../src/aedes/parser-settings.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/parser-settings.ts with mqtt-packet 9.0's parser: after CONNECT a
// client's parser keeps a shared settings object of its protocol version instead of the whole
// CONNECT packet, and all parsers share one array of state names. If the parser read something
// else of its settings, the packets parsed after CONNECT would come out wrong — MQTT 5 ones carry
// properties only the protocol version tells the parser to read — and this fails.

interface Parser { settings: Record<string, unknown>, _states: readonly string[] }

t.test('parsers keep shared settings after CONNECT, and MQTT 3.1 and 3.1.1 packets still parse', async t => {
  const settings = new ParserSettings()
  const parsers = new Map<string, Parser>()
  const aedes = await AedesUnderTest.start({}, () => client => {
    settings.install(client)
    const parser = (client as unknown as { _parser: Parser })._parser
    client.once('connected' as never, () => { parsers.set(client.id, parser) })
  })
  t.teardown(() => aedes.close())
  const got: string[] = []
  const reader = await aedes.connect({ clientId: 'reader', protocolVersion: 4 })
  reader.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
  await reader.subscribeAsync('v/#', { qos: 1 })
  const v3 = await aedes.connect({ clientId: 'three', protocolVersion: 3, protocolId: 'MQIsdp' })
  const v4 = await aedes.connect({ clientId: 'four', protocolVersion: 4, username: 'someone', password: 'secret' })
  await v3.publishAsync('v/3', 'from three', { qos: 1 })
  await v4.publishAsync('v/4', 'from four', { qos: 1 })
  await until('every message at the reader', () => got.length === 2)
  t.same(new Set(got), new Set(['v/3 from three', 'v/4 from four']))

  await until('the three parsers', () => parsers.size === 3)
  const [reader4, three, four] = ['reader', 'three', 'four'].map(id => parsers.get(id)!)
  t.same(four!.settings, { protocolVersion: 4, bridgeMode: false }, 'no CONNECT packet kept: no client id, username or password')
  t.ok(Object.isFrozen(four!.settings))
  t.equal(four!.settings, reader4!.settings, 'one settings object for every MQTT 3.1.1 connection')
  t.same(three!.settings, { protocolVersion: 3, bridgeMode: false })
  t.equal(three!._states, four!._states, 'one array of state names for all')
})

// Aedes 1.2 refuses MQTT 5 at CONNECT, but the parser patch is the parser's: an MQTT 5 CONNECT,
// then a PUBLISH whose properties are read only when the settings say version 5.
t.test('an MQTT 5 parser still reads properties after CONNECT (the parser alone)', async t => {
  new ParserSettings() // eslint-disable-line no-new -- patches the parser's _parseConnect once
  const parser = mqttPacket.parser()
  const packets: mqttPacket.Packet[] = []
  parser.on('packet', packet => packets.push(packet))
  parser.on('error', err => t.fail(err.message))
  parser.parse(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'five', keepalive: 0 }))
  parser.parse(mqttPacket.generate({ cmd: 'publish', topic: 'v/5', payload: Buffer.from('from five'), qos: 0, retain: false, dup: false, properties: { contentType: 'text/plain' } }, { protocolVersion: 5 }))
  t.equal(packets.length, 2)
  t.same((parser as unknown as Parser).settings, { protocolVersion: 5, bridgeMode: false }, 'shared settings')
  t.equal((packets[1] as mqttPacket.IPublishPacket).properties?.contentType, 'text/plain', 'properties parsed')
  t.equal((packets[1] as mqttPacket.IPublishPacket).payload.toString(), 'from five')
})
