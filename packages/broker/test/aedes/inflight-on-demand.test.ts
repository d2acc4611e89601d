import { connect as netConnect, type AddressInfo, type Socket } from 'node:net'
import type { Client } from 'aedes'
import mqttPacket, { type Packet } from 'mqtt-packet'
import t from 'tap'
import { inflightOnDemand, SetOnFirstAdd } from '../../src/aedes/inflight-on-demand.js'
import { brokerInternals } from '../../src/aedes/internals.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/inflight-on-demand.ts with Aedes 1.2: the inbound QoS 2 window is kept
// in a Set made at its first use. Aedes must still bound it (maxInflightInbound: a DUP of a
// packet id in flight takes no second slot, a new id past the limit closes the connection) and
// release a slot at PUBREL.

async function raw (aedes: AedesUnderTest, clientId: string): Promise<{ socket: Socket, packets: Packet[], closed: () => boolean }> {
  const socket = netConnect((aedes.server.address() as AddressInfo).port, '127.0.0.1')
  const packets: Packet[] = []
  let closed = false
  const parser = mqttPacket.parser()
  parser.on('packet', p => packets.push(p))
  socket.on('data', d => parser.parse(d))
  socket.on('close', () => { closed = true })
  socket.on('error', () => {})
  await new Promise(resolve => socket.once('connect', resolve))
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 0 }))
  await until('CONNACK', () => packets.some(p => p.cmd === 'connack'))
  return { socket, packets, closed: () => closed }
}

const qos2 = (messageId: number, dup = false): Buffer =>
  mqttPacket.generate({ cmd: 'publish', topic: 'in/flight', payload: Buffer.from(String(messageId)), qos: 2, messageId, retain: false, dup })

t.test('the inbound QoS 2 window, kept in a Set made on demand, is bounded and released as before', async t => {
  const aedes = await AedesUnderTest.start({ maxInflightInbound: 2 }, () => client => { inflightOnDemand(client) })
  t.teardown(() => aedes.close())
  const got: string[] = []
  const sub = await aedes.connect({ clientId: 'reader' })
  sub.on('message', (_topic, payload) => got.push(payload.toString()))
  await sub.subscribeAsync('in/#', { qos: 0 })
  const clients = (): Record<string, Client> => brokerInternals(aedes.broker).clients
  t.ok((clients().reader as unknown as { _inboundInflight: unknown })._inboundInflight instanceof SetOnFirstAdd, 'installed')

  const full = await raw(aedes, 'full')
  full.socket.write(Buffer.concat([qos2(1), qos2(2)]))
  await until('two PUBRECs', () => full.packets.filter(p => p.cmd === 'pubrec').length === 2)
  full.socket.write(qos2(1, true)) // a retransmission takes no second slot
  await until('its PUBREC', () => full.packets.filter(p => p.cmd === 'pubrec').length === 3)
  t.notOk(full.closed(), 'a DUP within the window is answered')
  full.socket.write(qos2(3))
  await until('the connection closed past maxInflightInbound', () => full.closed())

  const released = await raw(aedes, 'released')
  for (const id of [1, 2, 3]) {
    released.socket.write(qos2(id))
    await until(`PUBREC ${id}`, () => released.packets.some(p => p.cmd === 'pubrec' && p.messageId === id))
    released.socket.write(mqttPacket.generate({ cmd: 'pubrel', messageId: id }))
    await until(`PUBCOMP ${id}`, () => released.packets.some(p => p.cmd === 'pubcomp' && p.messageId === id))
  }
  t.notOk(released.closed(), 'each PUBREL gives its slot back: three messages through a window of two')
  await until('the messages', () => got.length >= 5)
  t.same([...new Set(got)].sort(), ['1', '2', '3'])
  released.socket.destroy()
})
