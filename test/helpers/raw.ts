import { connect as netConnect, type Socket } from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'

/** A raw TCP connection speaking MQTT packets by hand, for what a well-behaved client never sends. */
export class RawClient {
  readonly packets: Packet[] = []
  closed = false
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 })

  private constructor (readonly socket: Socket) {
    this.parser.on('packet', p => this.packets.push(p))
    this.parser.on('error', () => {})
    socket.on('data', d => this.parser.parse(d))
    socket.on('close', () => { this.closed = true })
    socket.on('error', () => {})
  }

  static async open (port: number): Promise<RawClient> {
    const socket = netConnect({ port, host: '127.0.0.1' })
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    socket.unref() // a test that fails midway must not hang on an open socket
    return new RawClient(socket)
  }

  send (packet: Record<string, unknown>): void {
    this.socket.write(mqttPacket.generate(packet as unknown as Packet))
  }

  write (bytes: Buffer): void {
    this.socket.write(bytes)
  }

  destroy (): void {
    this.socket.destroy()
  }
}

export const connectPacket = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  cmd: 'connect',
  protocolId: 'MQTT',
  protocolVersion: 4,
  clean: true,
  clientId: `raw-${Math.random().toString(16).slice(2, 10)}`,
  keepalive: 60,
  ...overrides
})
