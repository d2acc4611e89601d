import { PassThrough } from 'node:stream'
import t from 'tap'
import { PacketSizeGuard } from '../src/listeners/packet-size-guard.js'

function guarded (max: number) {
  const stream = new PassThrough()
  const refusals: string[] = []
  new PacketSizeGuard(max, (conn, reason) => { if (conn === stream) refusals.push(reason) }).watch(stream)
  return { stream, refusals }
}

t.test('packets within the limit pass untouched, across chunk boundaries', async t => {
  const { stream, refusals } = guarded(10)
  const packets = Buffer.from([0x30, 0x03, 1, 2, 3, 0xc0, 0x00, 0x30, 0x08, 1, 2, 3, 4, 5, 6, 7, 8])
  for (let i = 0; i < packets.length; i += 3) {
    stream.write(packets.subarray(i, i + 3))
    t.same(stream.read(), packets.subarray(i, i + 3))
  }
  t.same(refusals, [])
  t.notOk(stream.destroyed)
})

t.test('a packet whose header announces more than the limit is refused before its body', async t => {
  const { stream, refusals } = guarded(100)
  stream.write(Buffer.from([0x30, 0x80, 0x01])) // remaining length 128
  t.equal(stream.read(), null)
  t.match(refusals, [/packet of 131 bytes exceeds limits\.maxPacketSize \(100\)/])
  t.ok(stream.destroyed)
})

t.test('a remaining length over four bytes is malformed', async t => {
  const { stream, refusals } = guarded(1 << 28)
  stream.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))
  t.equal(stream.read(), null)
  t.match(refusals, [/malformed remaining length/])
})

t.test('a length split across reads is still measured', async t => {
  const { stream, refusals } = guarded(200)
  stream.write(Buffer.from([0x30, 0x80]))
  t.ok(stream.read())
  stream.write(Buffer.from([0x02]))
  t.equal(stream.read(), null)
  t.match(refusals, [/exceeds/])
})
