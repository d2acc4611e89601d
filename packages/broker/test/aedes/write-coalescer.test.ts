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
  // as the QoS 0 fast path writes: queued when the coalescer holds the connection, else at once
  const send = (text: string): void => {
    coalescer.hold(stream)
    if (!coalescer.queue(stream, Buffer.from(text))) stream.write(text)
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

// The QoS 0 fast path queues packets with a held connection instead of writing them; at the end
// of the turn each connection gets its packets in one write, and connections that queued the
// same Buffer objects (a firehose: every subscriber gets the same packets) share one join.
interface Recorded { stream: Writable, writes: Buffer[][], complete: () => void }
/** A stream that records its writes; `slow`: each write completes only when `complete()` is called (a socket the kernel is not taking bytes from). */
function recordingStream (highWaterMark?: number, slow = false): Recorded {
  const writes: Buffer[][] = []
  let waiting: Array<() => void> = []
  const done = (callback: () => void): void => { if (slow) waiting.push(callback); else callback() }
  const stream = new Writable({
    highWaterMark,
    write (chunk: Buffer, _encoding, callback) { writes.push([chunk]); done(callback) },
    writev (chunks, callback) { writes.push(chunks.map(({ chunk }) => chunk as Buffer)); done(callback) }
  })
  const complete = (): void => {
    const callbacks = waiting
    waiting = []
    for (const callback of callbacks) callback()
  }
  return { stream, writes, complete }
}
const joinedWrites = (writes: Buffer[][]): string[] => writes.map(chunks => Buffer.concat(chunks).toString())

t.test('packets queued for many connections leave in one write each, joined once for all that queued the same', async t => {
  const coalescer = new WriteCoalescer()
  const packets = ['p1', 'p2', 'p3'].map(text => Buffer.from(text))
  const other = [Buffer.from('q1'), Buffer.from('q2')]
  const same = [recordingStream(), recordingStream(), recordingStream()]
  const different = recordingStream()
  const all = [...same, different]
  for (const { stream } of all) coalescer.attach(stream)
  // the first turn holds every connection from its first packet
  for (const { stream } of same) {
    for (const packet of packets) {
      coalescer.hold(stream)
      t.ok(coalescer.queue(stream, packet), 'queued')
    }
  }
  for (const packet of other) {
    coalescer.hold(different.stream)
    t.ok(coalescer.queue(different.stream, packet))
  }
  for (const { writes } of all) t.same(writes, [], 'nothing written before the end of the turn')
  await nextTurn()
  for (const { writes } of same) t.same(joinedWrites(writes), ['p1p2p3'], 'the packets, in order, in one write')
  t.same(joinedWrites(different.writes), ['q1q2'])
  t.same(same[1]!.writes[0]!.length, 1, 'the second connection got one joined buffer')
  t.equal(same[1]!.writes[0]![0], same[2]!.writes[0]![0], 'the same buffer for the third')
  t.same(coalescer.joined.counts, { joins: 1, shared: 2 }, 'one join: the first connection\'s packets are not copied, nor those of a connection alone')
})

t.test('a write that is not queued leaves after the packets queued before it', async t => {
  const coalescer = new WriteCoalescer()
  const { stream, writes } = recordingStream()
  coalescer.attach(stream)
  coalescer.hold(stream)
  t.ok(coalescer.queue(stream, Buffer.from('a')))
  // as mqtt-packet's writeToStream does for Aedes' own packets: cork, write, uncork on the next tick
  stream.cork()
  stream.write(Buffer.from('b'))
  process.nextTick(() => { stream.uncork() })
  coalescer.hold(stream)
  t.ok(coalescer.queue(stream, Buffer.from('c')))
  await nextTurn()
  t.same(joinedWrites(writes), ['abc'], 'in the order they were written')
})

t.test('a packet that would fill the write buffer is not queued: what is queued goes into the stream first', async t => {
  const coalescer = new WriteCoalescer()
  const { stream, writes, complete } = recordingStream(100, true)
  coalescer.attach(stream)
  coalescer.hold(stream)
  t.ok(coalescer.queue(stream, Buffer.alloc(60, 'a')))
  t.equal(stream.writableLength, 0)
  coalescer.hold(stream)
  t.notOk(coalescer.queue(stream, Buffer.alloc(60, 'b')), 'refused')
  t.equal(stream.writableLength, 60, 'the queued packet is in the stream, not yet sent')
  t.notOk(stream.write(Buffer.alloc(60, 'b')), 'the caller\'s write sees the buffer full')
  complete()
  await nextTurn()
  complete()
  t.same(joinedWrites(writes).join(''), 'a'.repeat(60) + 'b'.repeat(60), 'in order')
})

t.test('packets queued for a connection destroyed before the end of the turn are dropped, without an error', async t => {
  const coalescer = new WriteCoalescer()
  const { stream, writes } = recordingStream()
  const errors: Error[] = []
  stream.on('error', err => errors.push(err))
  coalescer.attach(stream)
  coalescer.hold(stream)
  t.ok(coalescer.queue(stream, Buffer.from('lost')))
  stream.destroy()
  await nextTurn()
  await nextTurn()
  t.same(writes, [])
  t.same(errors, [])
})

t.test('a connection not held from its first packet (a turn after one without batching) is not queued', async t => {
  const coalescer = new WriteCoalescer()
  const { stream } = recordingStream()
  coalescer.attach(stream)
  coalescer.hold(stream)
  t.ok(coalescer.queue(stream, Buffer.from('1')))
  await nextTurn() // a turn of one packet: the next turn writes first packets at once
  coalescer.hold(stream)
  t.notOk(coalescer.queue(stream, Buffer.from('2')), 'written at once by the caller')
  coalescer.hold(stream)
  t.ok(coalescer.queue(stream, Buffer.from('3')), 'the second packet of the turn is held')
  const unattached = recordingStream()
  coalescer.hold(unattached.stream)
  t.notOk(coalescer.queue(unattached.stream, Buffer.from('x')), 'a stream not attached to this coalescer is never queued')
  await nextTurn()
})
