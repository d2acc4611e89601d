import { createHash, randomBytes } from 'node:crypto'
import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { collect, connect } from './helpers/mqtt.js'
import { connectPacket } from './helpers/raw.js'
import { ACL, USERS } from './helpers/policy.js'
import { waitFor } from './helpers/wait.js'

// MQTT over WebSocket is framed by Firehose itself on the connection's socket
// (packages/broker/src/listeners/websocket-handshake.ts, websocket-framing.ts): these tests speak
// WebSocket byte by byte to the real broker, for what browsers and mqtt.js never send — frames
// cut anywhere, fragmented messages, pings, closes and every frame RFC 6455 forbids. They are
// also the contract test for what the framing assumes of Node's net.Socket (reads arrive
// through push(), writes go through _write/_writev).

const MAX_PACKET = 4096
const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { limits: { maxPacketSize: MAX_PACKET } } })
t.teardown(() => broker.stop())

interface Frame { fin: boolean, opcode: number, payload: Buffer }

/** A raw WebSocket client: the handshake and frames written by hand, the server's frames parsed. */
class RawWebSocket {
  readonly frames: Frame[] = []
  closed = false
  response = ''
  #buffer = Buffer.alloc(0)
  #upgraded = false

  private constructor (readonly socket: Socket) {
    socket.on('data', data => this.#read(data))
    socket.on('close', () => { this.closed = true })
    socket.on('error', () => {})
  }

  /** Connects and sends `request` (the whole HTTP request), or a valid upgrade request offering `mqtt`. */
  static async open (request?: string | Buffer): Promise<RawWebSocket & { key: string }> {
    const socket = netConnect({ port: broker.ports.ws, host: '127.0.0.1' })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    socket.unref()
    const key = randomBytes(16).toString('base64')
    const ws = Object.assign(new RawWebSocket(socket), { key })
    socket.write(request ?? upgradeRequest(key))
    return ws
  }

  async upgraded (): Promise<void> {
    await waitFor('the 101 response', () => this.#upgraded || this.closed)
    if (!this.#upgraded) throw new Error(`not upgraded: ${this.response}`)
  }

  /** Sends one masked frame; `first` is the first byte (FIN, RSV, opcode). */
  send (first: number, payload: Buffer, options: { masked?: boolean, length?: number } = {}): void {
    this.socket.write(clientFrame(first, payload, options))
  }

  /** The MQTT packets in the binary frames received so far. */
  packets (): Packet[] {
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    const packets: Packet[] = []
    parser.on('packet', p => packets.push(p))
    for (const f of this.frames) if (f.opcode === 2 || f.opcode === 0) parser.parse(f.payload)
    return packets
  }

  #read (data: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, data])
    if (!this.#upgraded) {
      const end = this.#buffer.indexOf('\r\n\r\n')
      if (end < 0) return
      this.response = this.#buffer.subarray(0, end).toString()
      this.#buffer = this.#buffer.subarray(end + 4)
      if (!this.response.startsWith('HTTP/1.1 101')) {
        this.response += '\r\n\r\n' + this.#buffer.toString()
        return
      }
      this.#upgraded = true
    }
    for (;;) {
      const frame = serverFrame(this.#buffer)
      if (frame === undefined) return
      this.frames.push(frame.frame)
      this.#buffer = this.#buffer.subarray(frame.size)
    }
  }
}

function upgradeRequest (key: string, headers: Record<string, string> = {}): string {
  const all = { Host: '127.0.0.1', Upgrade: 'websocket', Connection: 'Upgrade', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Protocol': 'mqtt', ...headers }
  return `GET /mqtt HTTP/1.1\r\n${Object.entries(all).filter(([, v]) => v !== '').map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
}

function clientFrame (first: number, payload: Buffer, options: { masked?: boolean, length?: number } = {}): Buffer {
  const masked = options.masked ?? true
  const length = options.length ?? payload.length
  const lengthBytes = length < 126 ? Buffer.from([length]) : length < 65536 ? Buffer.from([126, length >> 8, length & 0xff]) : Buffer.concat([Buffer.from([127]), bigLength(length)])
  lengthBytes[0] = lengthBytes[0]! | (masked ? 0x80 : 0)
  const mask = randomBytes(4)
  const body = Buffer.from(payload)
  if (masked) for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i & 3]!
  return Buffer.concat([Buffer.from([first]), lengthBytes, masked ? mask : Buffer.alloc(0), body])
}

function bigLength (length: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(length))
  return b
}

function serverFrame (buf: Buffer): { frame: Frame, size: number } | undefined {
  if (buf.length < 2) return undefined
  if ((buf[1]! & 0x80) !== 0) throw new Error('the server masked a frame')
  let length = buf[1]! & 0x7f
  let at = 2
  if (length === 126) {
    if (buf.length < 4) return undefined
    length = buf.readUInt16BE(2)
    at = 4
  } else if (length === 127) {
    if (buf.length < 10) return undefined
    length = Number(buf.readBigUInt64BE(2))
    at = 10
  }
  if (buf.length < at + length) return undefined
  return { frame: { fin: (buf[0]! & 0x80) !== 0, opcode: buf[0]! & 0x0f, payload: Buffer.from(buf.subarray(at, at + length)) }, size: at + length }
}

const BINARY = 0x82
const mqtt = (packet: Record<string, unknown>): Buffer => mqttPacket.generate(packet as unknown as Packet)
const closeCode = (ws: RawWebSocket): number | undefined => {
  const close = ws.frames.find(f => f.opcode === 8)
  return close === undefined || close.payload.length < 2 ? undefined : close.payload.readUInt16BE(0)
}
const refused = async (): Promise<number> => await broker.metric('firehose_websocket_refused_total')

t.test('the handshake answers with RFC 6455\'s accept value and the mqtt subprotocol', async t => {
  const ws = await RawWebSocket.open()
  t.teardown(() => ws.socket.destroy())
  await ws.upgraded()
  const accept = createHash('sha1').update(ws.key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  t.match(ws.response, new RegExp(`\r\nSec-WebSocket-Accept: ${accept.replace(/[+/]/g, '\\$&')}\r\n`))
  t.match(ws.response, /\r\nSec-WebSocket-Protocol: mqtt(\r\n|$)/)
  t.match(ws.response, /\r\nUpgrade: websocket\r\n/i)
})

t.test('a CONNECT sent in the same write as the upgrade request (what arrives after the headers) is read', async t => {
  const key = randomBytes(16).toString('base64')
  const ws = await RawWebSocket.open(Buffer.concat([Buffer.from(upgradeRequest(key)), clientFrame(BINARY, mqtt(connectPacket()))]))
  t.teardown(() => ws.socket.destroy())
  await ws.upgraded()
  await waitFor('CONNACK', () => ws.packets().length > 0)
  t.match(ws.packets()[0], { cmd: 'connack', returnCode: 0 })
})

t.test('malformed upgrade requests get ws\'s answers, a log line and a count, and the broker stays up', async t => {
  const cases: Array<[string, string, RegExp]> = [
    ['POST', upgradeRequest('AAAAAAAAAAAAAAAAAAAAAA==').replace(/^GET/, 'POST'), /^HTTP\/1\.1 405 /],
    ['no key', upgradeRequest('', {}), /^HTTP\/1\.1 400 [^]*Sec-WebSocket-Key/],
    ['a short key', upgradeRequest('c2hvcnQ='), /^HTTP\/1\.1 400 [^]*Sec-WebSocket-Key/],
    ['version 12', upgradeRequest('AAAAAAAAAAAAAAAAAAAAAA==', { 'Sec-WebSocket-Version': '12' }), /^HTTP\/1\.1 400 [^]*Sec-WebSocket-Version: 13, 8/],
    ['an empty protocol in the list', upgradeRequest('AAAAAAAAAAAAAAAAAAAAAA==', { 'Sec-WebSocket-Protocol': 'mqtt, , x' }), /^HTTP\/1\.1 400 [^]*Sec-WebSocket-Protocol/]
  ]
  for (const [name, request, answer] of cases) {
    const before = await refused()
    const ws = await RawWebSocket.open(request)
    await waitFor(`the answer to ${name}`, () => ws.closed)
    t.match(ws.response, answer, name)
    t.equal(await refused(), before + 1, `${name}: counted`)
  }
  t.ok(broker.logs.some(l => l.event === 'websocket.refused' && /Sec-WebSocket-Version/.test(String(l.msg))), 'logged with the reason')
  const client = await connect(`ws://127.0.0.1:${broker.ports.ws}/mqtt`)
  t.ok(client.connected, 'an mqtt.js client still connects')
  await client.endAsync()
})

t.test('packets cut across frames and reads, and frames holding several packets, reach Aedes whole', async t => {
  const ws = await RawWebSocket.open()
  t.teardown(() => ws.socket.destroy())
  await ws.upgraded()
  // CONNECT as a fragmented message: a binary frame without FIN, then two continuations,
  // written one byte per TCP write so that headers, masking keys and payloads are cut everywhere
  const connectBytes = mqtt(connectPacket())
  const a = connectBytes.subarray(0, 3)
  const b = connectBytes.subarray(3, 10)
  const c = connectBytes.subarray(10)
  const bytes = Buffer.concat([clientFrame(0x02, a), clientFrame(0x00, b), clientFrame(0x80, c)])
  ws.socket.setNoDelay(true)
  for (const byte of bytes) {
    ws.socket.write(Buffer.from([byte]))
    await new Promise(resolve => setImmediate(resolve))
  }
  await waitFor('CONNACK', () => ws.packets().some(p => p.cmd === 'connack'))
  t.match(ws.packets()[0], { cmd: 'connack', returnCode: 0 })
  // SUBSCRIBE and PINGREQ in one frame; a control frame (ping) between the fragments of another message
  ws.send(BINARY, Buffer.concat([mqtt({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'gerrit/framing/#', qos: 0 }] }), mqtt({ cmd: 'pingreq' })]))
  const publisher = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => publisher.endAsync())
  await waitFor('SUBACK and PINGRESP', () => ws.packets().some(p => p.cmd === 'pingresp'))
  await waitFor('SUBACK', () => ws.packets().some(p => p.cmd === 'suback'))
  t.same(ws.packets().slice(1).map(p => p.cmd).sort(), ['pingresp', 'suback'], 'both packets of the frame answered (Aedes answers PINGREQ at once, SUBSCRIBE after its store)')
  const ping = mqtt({ cmd: 'pingreq' })
  ws.send(0x02, ping.subarray(0, 1))
  ws.send(0x89, Buffer.from('between'))
  ws.send(0x80, ping.subarray(1))
  await waitFor('the pong and the second PINGRESP', () => ws.packets().filter(p => p.cmd === 'pingresp').length === 2 && ws.frames.some(f => f.opcode === 10))
  t.equal(ws.frames.find(f => f.opcode === 10)?.payload.toString(), 'between', 'the ping answered with its data')
  await publisher.publishAsync('gerrit/framing/x', Buffer.alloc(3000, 'x'), { qos: 1 })
  await waitFor('the delivery', () => ws.packets().some(p => p.cmd === 'publish'))
  const delivered = ws.packets().find(p => p.cmd === 'publish') as Packet & { topic: string, payload: Buffer }
  t.equal(delivered.topic, 'gerrit/framing/x')
  t.equal(delivered.payload.length, 3000, 'delivered whole')
  t.ok(ws.frames.every(f => f.fin && (f.opcode === 2 || f.opcode === 10)), 'the server sends whole binary frames (and the pong)')
})

t.test('a close frame is answered with its code and the connection closed; the client\'s DISCONNECT before it counts', async t => {
  const watcher = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`)
  t.teardown(() => watcher.endAsync())
  const wills = collect(watcher)
  await watcher.subscribeAsync('gerrit/will/framing/#')
  for (const disconnect of [true, false]) {
    const ws = await RawWebSocket.open()
    await ws.upgraded()
    // the will's publisher must be allowed to publish it: an internal bridge's account
    ws.send(BINARY, mqtt(connectPacket({ username: 'gerrit', password: Buffer.from(USERS.gerrit), will: { topic: `gerrit/will/framing/${String(disconnect)}`, payload: Buffer.from('gone'), qos: 0, retain: false } })))
    await waitFor('CONNACK', () => ws.packets().length > 0)
    const code = Buffer.alloc(2)
    code.writeUInt16BE(1001)
    ws.socket.write(Buffer.concat([disconnect ? clientFrame(BINARY, mqtt({ cmd: 'disconnect' })) : Buffer.alloc(0), clientFrame(0x88, code)]))
    await waitFor('the connection closed', () => ws.closed)
    t.equal(closeCode(ws), 1001, 'the close frame echoes the client\'s code')
  }
  await waitFor('the will of the client that sent no DISCONNECT', () => wills.length > 0)
  t.same(wills, ['gerrit/will/framing/false gone'], 'a will only for the client that closed without DISCONNECT')
})

t.test('every frame RFC 6455 or MQTT forbids closes the connection with its code, a log line and a count', async t => {
  const connectBytes = mqtt(connectPacket())
  const cases: Array<[string, (ws: RawWebSocket) => void, number]> = [
    ['an unmasked frame', ws => { ws.send(BINARY, connectBytes, { masked: false }) }, 1002],
    ['a text frame', ws => { ws.send(0x81, Buffer.from('{"cmd":"connect"}')) }, 1003],
    ['RSV1 set', ws => { ws.send(0xc2, connectBytes) }, 1002],
    ['a continuation with no message', ws => { ws.send(0x80, connectBytes) }, 1002],
    ['a new message inside a fragmented one', ws => { ws.send(0x02, connectBytes.subarray(0, 2)); ws.send(BINARY, connectBytes.subarray(2)) }, 1002],
    ['an unknown opcode', ws => { ws.send(0x83, connectBytes) }, 1002],
    ['a fragmented ping', ws => { ws.send(0x09, Buffer.from('x')) }, 1002],
    ['a ping of 126 bytes', ws => { ws.send(0x89, Buffer.alloc(126)) }, 1002],
    ['a close frame with one byte', ws => { ws.send(0x88, Buffer.from([3])) }, 1002],
    ['a close frame with code 1005', ws => { ws.send(0x88, Buffer.from([0x03, 0xed])) }, 1002],
    ['a frame over limits.maxPacketSize', ws => { ws.send(BINARY, Buffer.alloc(MAX_PACKET + 1)) }, 1009],
    ['a frame announcing 2^60 bytes', ws => { ws.send(BINARY, Buffer.alloc(4), { length: 2 ** 60 }) }, 1009]
  ]
  for (const [name, send, code] of cases) {
    const before = await refused()
    const ws = await RawWebSocket.open()
    await ws.upgraded()
    send(ws)
    await waitFor(`${name}: the connection closed`, () => ws.closed)
    t.equal(closeCode(ws), code, `${name}: close code ${code}`)
    t.equal(await refused(), before + 1, `${name}: counted`)
  }
  t.ok(broker.logs.some(l => l.event === 'websocket.refused' && /unmasked/.test(String(l.msg))), 'logged with the reason')
})

t.test('clients that vanish mid-header, mid-payload and mid-fragment leave the broker serving everyone else', async t => {
  const reader = await connect(`ws://127.0.0.1:${broker.ports.ws}/mqtt`)
  t.teardown(() => reader.endAsync())
  const got = collect(reader)
  await reader.subscribeAsync('gerrit/vanish/#')
  const connectBytes = clientFrame(BINARY, mqtt(connectPacket()))
  for (const cut of [1, 3, 7, connectBytes.length - 2]) {
    const ws = await RawWebSocket.open()
    await ws.upgraded()
    ws.socket.write(connectBytes.subarray(0, cut))
    await new Promise(resolve => setTimeout(resolve, 20))
    ws.socket.destroy()
  }
  const fragmenting = await RawWebSocket.open()
  await fragmenting.upgraded()
  fragmenting.send(0x02, mqtt(connectPacket()).subarray(0, 5))
  await new Promise(resolve => setTimeout(resolve, 20))
  fragmenting.socket.destroy()
  const publisher = await connect(`ws://127.0.0.1:${broker.ports.ws}/mqtt`, { username: 'gerrit', password: USERS.gerrit })
  t.teardown(() => publisher.endAsync())
  await publisher.publishAsync('gerrit/vanish/after', 'still here', { qos: 1 })
  await waitFor('the message', () => got.length > 0)
  t.same(got, ['gerrit/vanish/after still here'])
  t.equal(broker.exitCode, null, 'the broker is running')
})
