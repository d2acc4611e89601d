import { createServer as createNetServer, type Socket } from 'node:net'
import { createServer as createTlsServer, type TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import type { Catalogue } from '@firehose/schemas'
import type { HistoryApiDeps } from '../http/api.js'
import type { Limits, ListenerConfig } from '../config/types.js'
import type { ConnectionGuard } from './connection-guard.js'
import { PacketSizeGuard } from './packet-size-guard.js'
import type { ConnectionHandler } from './connection-handler.js'
import type { BrokerStats } from '../observability/stats.js'
import { rawSocket, serveListener, writeBufferBytes, type Listener } from './listener.js'
import { readTlsOptions } from './tls-options.js'

export interface ListenerDeps {
  guard: ConnectionGuard
  limits: Limits
  stats: BrokerStats
  logger: Logger
  /** hands a connection to Aedes (instead of `broker.handle`), with Firehose's fan-out path */
  handle: ConnectionHandler
  /** the configuration's source, for error messages */
  source: string
  /** the journal's read API, served on the WebSocket listeners; undefined: the broker keeps no journal */
  history?: Omit<HistoryApiDeps, 'frames' | 'keepOpen'>
  /** the schema catalogue, served on the WebSocket listeners (/v1/schemas) */
  catalogue?: Catalogue
}

/** MQTT over TCP, or over TLS when the listener has `tls`. */
export async function startTcpListener (config: ListenerConfig, key: string, deps: ListenerDeps): Promise<Listener> {
  const { guard, limits, stats } = deps
  const logger = deps.logger.child({ listener: config.name })
  const packetSize = new PacketSizeGuard(limits.maxPacketSize, (socket, reason) => {
    stats.packetsRefused++
    logger.warn({ ip: (socket as Socket).remoteAddress }, 'connection closed: %s', reason)
  })
  const handOver = (socket: Socket, raw: Socket): void => {
    guard.handedOver(raw)
    socket.setNoDelay(true)
    packetSize.watch(socket)
    deps.handle(socket)
  }

  let server
  if (config.tls === undefined) {
    server = createNetServer({ highWaterMark: writeBufferBytes(limits) }, socket => {
      if (guard.admit(socket, config.name)) handOver(socket, socket)
    })
  } else {
    const tls = config.tls
    server = createTlsServer({ ...await readTlsOptions(tls, key, deps.source), handshakeTimeout: limits.connectTimeout * 1000, highWaterMark: writeBufferBytes(limits) })
    // the raw socket, before the handshake: limits are enforced before TLS costs anything
    server.on('connection', (socket: Socket) => { guard.admit(socket, config.name) })
    server.on('secureConnection', (socket: TLSSocket) => { handOver(socket, rawSocket(socket)) })
    server.on('tlsClientError', (err, socket) => {
      logger.debug({ ip: socket.remoteAddress, err: err.message }, 'TLS handshake failed')
    })
  }
  return await serveListener(server, config, { key, source: deps.source, logger, description: config.tls ? 'MQTT over TLS' : 'MQTT' })
}
