import { once } from 'node:events'
import { createServer, Socket, type AddressInfo } from 'node:net'
import { TLSSocket } from 'node:tls'
import t from 'tap'
import { checkDirectWrite, writeDirect } from '../src/listeners/direct-write.js'

// Contract of src/listeners/direct-write.ts with Node's net.Socket, over real loopback TCP
// connections: a write below the stream must reach the peer, in order with the stream's own
// writes, be counted in bytesWritten, give way whenever anything waits in or under the stream,
// and destroy the connection when it fails.

interface Pair { server: Socket, client: Socket, received: () => Buffer, close: () => Promise<void> }

async function connectedPair (): Promise<Pair> {
  const listener = createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const accepted = once(listener, 'connection') as Promise<[Socket]>
  const client = new Socket()
  client.connect((listener.address() as AddressInfo).port, '127.0.0.1')
  await once(client, 'connect')
  const [server] = await accepted
  const chunks: Buffer[] = []
  client.on('data', chunk => chunks.push(chunk))
  return {
    server,
    client,
    received: () => Buffer.concat(chunks),
    close: async () => {
      server.destroy()
      client.destroy()
      listener.close()
      await once(listener, 'close')
    }
  }
}

const until = async (what: string, check: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

t.test('this Node has what a direct write calls', async t => {
  t.doesNotThrow(() => checkDirectWrite())
})

t.test('bytes written below the stream arrive in order with the stream\'s own writes, and are counted', async t => {
  const pair = await connectedPair()
  t.teardown(pair.close)
  const { server } = pair
  t.ok(writeDirect(server, Buffer.from('one ')), 'written below the stream')
  t.equal(server.writableLength, 0, 'the stream holds nothing')
  server.write(Buffer.from('two '))
  t.ok(writeDirect(server, Buffer.from('three ')), 'once the stream\'s write is done, below it again')
  server.write(Buffer.from('four'))
  await until('every byte', () => pair.received().length === 18)
  t.equal(pair.received().toString(), 'one two three four')
  t.equal(server.bytesWritten, 18, 'bytesWritten counts them all')
})

t.test('anything waiting in or under the stream, or a connection that is not plain TCP, keeps write()', async t => {
  const pair = await connectedPair()
  t.teardown(pair.close)
  const { server } = pair
  server.cork()
  t.notOk(writeDirect(server, Buffer.from('x')), 'not while corked')
  server.write(Buffer.from('held '))
  t.notOk(writeDirect(server, Buffer.from('x')), 'not while the stream holds bytes')
  server.uncork()
  t.ok(writeDirect(server, Buffer.from('after')), 'once they are written')
  await until('both', () => pair.received().toString() === 'held after')

  // a framed connection (listeners/websocket-framing.ts) writes through its own _write
  const framed = await connectedPair()
  t.teardown(framed.close)
  framed.server._write = function (chunk, encoding, callback) { Socket.prototype._write.call(this, chunk, encoding, callback) }
  t.notOk(writeDirect(framed.server, Buffer.from('x')), 'not with a _write of its own')

  const tls = new TLSSocket(new Socket())
  t.notOk(writeDirect(tls, Buffer.from('x')), 'not over TLS')
  tls.destroy()

  const connecting = new Socket()
  connecting.on('error', () => {})
  connecting.connect(9, '127.0.0.1')
  t.notOk(writeDirect(connecting, Buffer.from('x')), 'not while connecting')
  connecting.destroy()

  server.end()
  t.notOk(writeDirect(server, Buffer.from('x')), 'not once ended')
  server.destroy()
  t.notOk(writeDirect(server, Buffer.from('x')), 'not once destroyed')
})

t.test('what the kernel does not take waits in libuv, and later writes go behind it, in order', async t => {
  const pair = await connectedPair()
  t.teardown(pair.close)
  const { server, client } = pair
  client.pause() // a subscriber that stops reading for a while
  const block = (n: number): Buffer => Buffer.alloc(64 * 1024, n % 251)
  let sent = 0
  let direct = 0
  // fill the kernel's buffers until libuv holds the rest of a write
  while (writeDirect(server, block(sent))) {
    sent++
    direct++
    if (sent > 10_000) break
  }
  t.ok(direct > 0 && sent < 10_000, `${direct} blocks written below the stream before the kernel's buffers were full`)
  const queued = (server as unknown as { _handle: { writeQueueSize: number } })._handle.writeQueueSize
  t.ok(queued > 0, `libuv holds ${queued} bytes`)
  t.equal(server.writableLength, 0, 'the stream knows nothing of them')
  // now through the stream, behind what libuv holds
  for (let i = 0; i < 4; i++) server.write(block(sent++))
  t.notOk(writeDirect(server, block(0)), 'not while the stream has a write under way')
  client.resume()
  await until('every block', () => pair.received().length === sent * 64 * 1024, 20_000)
  const got = pair.received()
  let inOrder = true
  for (let i = 0; i < sent; i++) if (got[i * 64 * 1024] !== i % 251 || got[(i + 1) * 64 * 1024 - 1] !== i % 251) inOrder = false
  t.ok(inOrder, `${sent} blocks arrived whole and in order`)
})

t.test('a direct write that fails destroys its connection with the error, and throws nothing', async t => {
  const pair = await connectedPair()
  t.teardown(pair.close)
  const { server, client } = pair
  const errors: NodeJS.ErrnoException[] = []
  server.on('error', err => errors.push(err))
  server.pause() // not reading: only the write can find out that the peer is gone
  client.resetAndDestroy() // the peer vanishes with a reset
  await once(client, 'close')
  await until('the connection to be destroyed', () => {
    if (!server.destroyed) t.ok(writeDirect(server, Buffer.from('into the void')), 'written below the stream')
    return server.destroyed
  })
  await until('its error', () => errors.length > 0)
  t.equal(errors.length, 1, 'one error')
  t.equal(errors[0]!.syscall, 'write', 'from the write')
  t.ok(['EPIPE', 'ECONNRESET'].includes(errors[0]!.code ?? ''), `${errors[0]!.code}`)
})

t.test('a direct write whose rest, held by libuv, fails later destroys its connection too', async t => {
  const pair = await connectedPair()
  t.teardown(pair.close)
  const { server, client } = pair
  const errors: NodeJS.ErrnoException[] = []
  server.on('error', err => errors.push(err))
  // not reading at all (pause() alone lets Node read until its buffer is full): only the write can find out
  ;(server as unknown as { _handle: { readStop: () => number } })._handle.readStop()
  client.pause()
  let blocks = 0
  while (writeDirect(server, Buffer.alloc(64 * 1024)) && blocks < 10_000) blocks++
  t.ok((server as unknown as { _handle: { writeQueueSize: number } })._handle.writeQueueSize > 0, 'libuv holds the rest of a direct write')
  client.resetAndDestroy()
  await until('the connection to be destroyed', () => server.destroyed)
  await until('its error', () => errors.length > 0)
  t.equal(errors[0]!.syscall, 'write', `from the write held by libuv (${errors[0]!.code})`)
})
