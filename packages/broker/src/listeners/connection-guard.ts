import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Limits } from '../config/types.js'
import type { BrokerStats } from '../observability/stats.js'

const ADMISSION = Symbol('firehose.connectionGuard.admission')
type Admitted = Socket & { [ADMISSION]: { guard: ConnectionGuard, ip: string, listener: string } }

function onAdmittedClose (this: Admitted): void {
  const { guard, ip, listener } = this[ADMISSION]
  guard.released(this, ip, listener)
}

/**
 * Admits raw sockets on every listener against the total and per-address limits, keeps
 * per-listener counts, and sums bytes in and out (live sockets plus those already closed).
 * Checked on the raw TCP connection, before TLS or HTTP, so a flood costs us little.
 */
export class ConnectionGuard {
  private readonly perIp = new Map<string, number>()
  private readonly live = new Set<Socket>()
  private readonly perListener = new Map<string, number>()
  private readonly handshakes = new Map<Socket, NodeJS.Timeout>()
  private closedBytesRead = 0
  private closedBytesWritten = 0

  constructor (
    private readonly limits: Limits,
    private readonly stats: BrokerStats,
    private readonly logger: Logger
  ) {}

  /** Returns false (and destroys the socket) when a limit is reached. */
  admit (socket: Socket, listener: string): boolean {
    const ip = socket.remoteAddress ?? 'unknown'
    const fromIp = this.perIp.get(ip) ?? 0
    if (this.live.size >= this.limits.maxConnections || fromIp >= this.limits.maxConnectionsPerIp) {
      this.stats.connectionsRefused++
      const which = this.live.size >= this.limits.maxConnections ? 'limits.maxConnections' : 'limits.maxConnectionsPerIp'
      this.logger.warn({ ip, listener, limit: which }, 'connection refused: %s reached', which)
      socket.destroy()
      return false
    }
    this.perIp.set(ip, fromIp + 1)
    this.live.add(socket)
    this.perListener.set(listener, (this.perListener.get(listener) ?? 0) + 1)
    // TLS handshakes and WebSocket upgrades must finish within limits.connectTimeout too:
    // Aedes' own timer only starts once the socket is handed to it
    const timer = setTimeout(() => {
      this.logger.debug({ ip, listener }, 'connection closed: no TLS handshake or WebSocket upgrade within limits.connectTimeout')
      socket.destroy()
    }, this.limits.connectTimeout * 1000)
    timer.unref()
    this.handshakes.set(socket, timer)
    // a listener every socket shares, its state in one small object (kept as long as the socket)
    ;(socket as Admitted)[ADMISSION] = { guard: this, ip, listener }
    socket.on('close', onAdmittedClose)
    return true
  }

  /** An admitted socket closed: it no longer counts. */
  released (socket: Socket, ip: string, listener: string): void {
    this.handedOver(socket)
    this.live.delete(socket)
    const n = (this.perIp.get(ip) ?? 1) - 1
    if (n <= 0) this.perIp.delete(ip)
    else this.perIp.set(ip, n)
    this.perListener.set(listener, (this.perListener.get(listener) ?? 1) - 1)
    this.closedBytesRead += socket.bytesRead
    this.closedBytesWritten += socket.bytesWritten
  }

  /** The socket reached the MQTT layer, whose connect timeout takes over. */
  handedOver (socket: Socket): void {
    const timer = this.handshakes.get(socket)
    if (timer !== undefined) {
      clearTimeout(timer)
      this.handshakes.delete(socket)
    }
  }

  get connections (): number { return this.live.size }

  connectionsOn (listener: string): number { return this.perListener.get(listener) ?? 0 }

  bytes (): { received: number, sent: number } {
    let received = this.closedBytesRead
    let sent = this.closedBytesWritten
    for (const s of this.live) {
      received += s.bytesRead
      sent += s.bytesWritten
    }
    return { received, sent }
  }

  /** Ends every admitted socket (shutdown). */
  destroyAll (): void {
    for (const s of this.live) s.destroy()
  }
}
