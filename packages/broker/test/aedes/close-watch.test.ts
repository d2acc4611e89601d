import { connect as netConnect, type AddressInfo, type Socket } from 'node:net'
import type { Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import t from 'tap'
import { watchClose } from '../../src/aedes/close-watch.js'
import { brokerInternals } from '../../src/aedes/internals.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/close-watch.ts with Aedes 1.2: the client no longer watches its
// connection with stream.finished, but with one 'close' listener. A connection that closes
// without an 'end' or an 'error' (destroyed on the broker's side, or reset by the peer) must
// still close its client: it leaves the broker's clients, Aedes reports the disconnect, and its
// will is published. Without the listener, the destroyed connection's client would stay.

function clients (aedes: AedesUnderTest): Record<string, Client> {
  return brokerInternals(aedes.broker).clients
}

async function connectWithWill (aedes: AedesUnderTest, clientId: string): Promise<Socket> {
  const socket = netConnect((aedes.server.address() as AddressInfo).port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise(resolve => socket.once('connect', resolve))
  socket.write(mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive: 0,
    will: { topic: `will/${clientId}`, payload: Buffer.from('gone'), qos: 0, retain: false }
  }))
  await until(`${clientId} connected`, () => clients(aedes)[clientId] !== undefined)
  return socket
}

t.test('a connection that closes without end or error closes its client, and its will is published', async t => {
  const aedes = await AedesUnderTest.start({}, () => client => { watchClose(client) })
  t.teardown(() => aedes.close())
  const wills: string[] = []
  const disconnected: string[] = []
  aedes.broker.on('clientDisconnect', (client: Client) => disconnected.push(client.id))
  const watcher = await aedes.connect({ clientId: 'watcher' })
  watcher.on('message', topic => wills.push(topic))
  await watcher.subscribeAsync('will/#', { qos: 0 })

  // destroyed on the broker's side: 'close' only
  await connectWithWill(aedes, 'destroyed')
  clients(aedes).destroyed!.conn.destroy()
  // reset by the peer
  const reset = await connectWithWill(aedes, 'reset')
  reset.resetAndDestroy()
  // ended by the peer, as before
  const ended = await connectWithWill(aedes, 'ended')
  ended.end()

  await until('the three wills', () => wills.length === 3)
  t.same(new Set(wills), new Set(['will/destroyed', 'will/reset', 'will/ended']))
  t.same(new Set(disconnected), new Set(['destroyed', 'reset', 'ended']))
  for (const id of ['destroyed', 'reset', 'ended']) t.equal(clients(aedes)[id], undefined, `${id} left the broker`)
  t.equal(clients(aedes).watcher?.conn.listeners('close').filter(l => l.name === 'closeClient').length, 1, 'the patch\'s one close listener')
  t.equal(clients(aedes).watcher?.conn.listenerCount('finish'), 0, 'stream.finished\'s listeners gone')
})

// The client's bound listeners (error on the connection and on the parser, end on the
// connection) are replaced in place by shared functions: each must still reach its client.
t.test('a connection error and a malformed packet still end their clients, through the shared listeners', async t => {
  const aedes = await AedesUnderTest.start({}, () => client => { watchClose(client) })
  t.teardown(() => aedes.close())
  const errors: string[] = []
  aedes.broker.on('clientError', (client: Client, err: Error) => errors.push(`${client.id}: ${err.message}`))
  await connectWithWill(aedes, 'failing')
  const conn = clients(aedes).failing!.conn
  const bound = (emitter: { listeners: (event: string) => Array<{ name: string }> }, event: string): string[] =>
    emitter.listeners(event).map(listener => listener.name).filter(name => name.startsWith('bound '))
  t.same(bound(conn, 'error'), [], 'no bound error listener on the connection')
  t.same(bound(conn, 'end'), [], 'no bound end listener')
  t.same(bound((clients(aedes).failing as unknown as { _parser: typeof conn })._parser, 'error'), [], 'no bound error listener on the parser')
  conn.destroy(new Error('connection broke'))

  const malformed = await connectWithWill(aedes, 'malformed')
  // a PUBLISH whose remaining length promises a topic longer than the packet
  malformed.write(Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61]))

  await until('both clients gone', () => clients(aedes).failing === undefined && clients(aedes).malformed === undefined)
  t.ok(errors.some(line => line === 'failing: connection broke'), `the connection's error reached its client: ${errors.join('; ')}`)
  t.ok(errors.some(line => line.startsWith('malformed: ')), `the parser's error reached its client: ${errors.join('; ')}`)
})
