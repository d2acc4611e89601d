import type { Socket } from 'node:net'
import { Writable } from 'node:stream'
import { setImmediate as nextTurn } from 'node:timers/promises'
import t from 'tap'
import { WriteCoalescer } from '../../src/aedes/write-coalescer.js'
import { AedesUnderTest, until } from './harness.js'

// Contract of src/aedes/write-coalescer.ts with Aedes: Aedes writes each packet through
// mqtt-packet's writeToStream, which corks the connection; the coalescer turns that cork into
// one held until the end of the event-loop turn, so a burst of deliveries to one subscriber
// leaves in a few writes instead of one per packet. QoS 1 deliveries take Aedes' own path
// (no fast path here). If Aedes stopped corking through the stream, or wrote some other way,
// the writes would be one per packet and this fails.

const MESSAGES = 200

async function burst (coalesce: boolean): Promise<{ writes: number, received: number }> {
  const coalescer = new WriteCoalescer()
  const sockets: Socket[] = []
  const aedes = await AedesUnderTest.start({}, () => client => {
    const socket = client.conn as Socket
    sockets.push(socket)
    if (coalesce) coalescer.attach(socket)
  })
  try {
    const sub = await aedes.connect()
    let received = 0
    sub.on('message', () => { received++ })
    await sub.subscribeAsync('burst/#', { qos: 1 })
    const socket = sockets[0]!
    let writes = 0
    const write = socket._write.bind(socket)
    const writev = socket._writev?.bind(socket)
    socket._write = (chunk, encoding, callback) => { writes++; write(chunk, encoding, callback) }
    if (writev !== undefined) socket._writev = (chunks, callback) => { writes++; writev(chunks, callback) }
    for (let i = 0; i < MESSAGES; i++) aedes.broker.publish({ cmd: 'publish', topic: `burst/${i}`, payload: Buffer.from(String(i)), qos: 1, retain: false, dup: false }, () => {})
    await until('the burst', () => received === MESSAGES)
    return { writes, received }
  } finally {
    await aedes.close()
  }
}

t.test('a burst of deliveries to one subscriber leaves in a few writes', async t => {
  const coalesced = await burst(true)
  const plain = await burst(false)
  t.equal(coalesced.received, MESSAGES)
  t.ok(coalesced.writes * 4 <= plain.writes, `coalesced: ${coalesced.writes} writes; Aedes alone: ${plain.writes} writes for ${MESSAGES} packets`)
})

// The coalescer's own rule for when to hold: a connection written once per turn (low rates) gets
// its first packet at once; after a turn that wrote some connection twice, every connection is
// held from its first packet until the end of the turn.
t.test('after a turn with one packet per connection, the first packet of a turn is written at once', async t => {
  const coalescer = new WriteCoalescer()
  const written: string[] = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, callback) { written.push(chunk.toString()); callback() } })
  coalescer.attach(stream)
  const send = (text: string): void => {
    coalescer.hold(stream)
    stream.write(text)
  }
  // the first turn holds: nothing is known yet
  send('a')
  send('b')
  t.same(written, [], 'held')
  await nextTurn()
  t.same(written, ['a', 'b'], 'at the end of the turn')
  // after a turn that wrote the connection twice: held from the first packet
  send('c')
  t.same(written, ['a', 'b'], 'held after a batched turn')
  await nextTurn()
  t.same(written, ['a', 'b', 'c'])
  // after a turn of one packet: the first goes at once, the second is held
  send('d')
  t.same(written, ['a', 'b', 'c', 'd'], 'written at once')
  send('e')
  send('f')
  t.same(written, ['a', 'b', 'c', 'd'], 'the rest of the turn held')
  await nextTurn()
  t.same(written, ['a', 'b', 'c', 'd', 'e', 'f'], 'in order')
  send('g')
  t.same(written.length, 6, 'held again after that turn')
  await nextTurn()
  t.same(written.length, 7)
  t.same(coalescer.turns, { held: 3, writingThrough: 1 })
})
