import { createServer as createHttpServer, type IncomingMessage } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { WebSocketServer } from 'ws'
import type { ListenerConfig } from '../config/types.js'
import { createHistoryApi } from '../http/api.js'
import { FrameCache } from '../http/envelope.js'
import { isStreamPath, serveStreamUpgrade } from '../http/ws-stream.js'
import { PacketSizeGuard } from './packet-size-guard.js'
import { rawSocket, serveListener, writeBufferBytes, type Listener } from './listener.js'
import type { ListenerDeps } from './tcp.js'
import { readTlsOptions } from './tls-options.js'
import { WebSocketFraming } from './websocket-framing.js'
import { acceptUpgrade } from './websocket-handshake.js'

/** MQTT subprotocols offered by browsers' clients: MQTT 3.1.1 (`mqtt`) and 3.1 (`mqttv3.1`). */
function chooseProtocol (offered: Set<string>): string | false {
  if (offered.has('mqtt')) return 'mqtt'
  if (offered.has('mqttv3.1')) return 'mqttv3.1'
  return false
}

/**
 * MQTT over WebSocket (TLS when the listener has `tls`), on any path: the handshake and the
 * framing are Firehose's own (websocket-handshake.ts, websocket-framing.ts), on the connection's
 * socket; history streams over WebSocket use ws. Plain HTTP requests go to the journal's read
 * API (http/api.ts), with fastify on the same server.
 */
export async function startWebSocketListener (config: ListenerConfig, key: string, deps: ListenerDeps): Promise<Listener> {
  const { guard, limits, stats } = deps
  const logger = deps.logger.child({ listener: config.name })
  const server = config.tls === undefined
    ? createHttpServer()
    : createHttpsServer({ ...await readTlsOptions(config.tls, key, deps.source), handshakeTimeout: limits.connectTimeout * 1000 })
  const history = deps.history === undefined ? undefined : { ...deps.history, frames: new FrameCache(), keepOpen: (socket: Socket) => { guard.handedOver(rawSocket(socket)) } }
  const api = createHistoryApi(history, () => server, deps.catalogue)
  await api.ready()
  server.headersTimeout = limits.connectTimeout * 1000
  server.requestTimeout = limits.connectTimeout * 1000
  // the raw TCP socket: limits apply before TLS and HTTP parsing
  server.on('connection', (socket: Socket) => { guard.admit(socket, config.name) })
  // a whole HTTP request arrived: from here Node's own timeouts bound the connection (headers and
  // request within limits.connectTimeout, 5 s idle between keep-alive requests); the guard's
  // would cut a keep-alive API client (a pull consumer, an event poster) mid-use
  server.on('request', (req: IncomingMessage) => { guard.handedOver(rawSocket(req.socket)) })

  const framing = new WebSocketFraming(limits.maxPacketSize, writeBufferBytes(limits), (socket, reason) => {
    stats.webSocketRefused++
    logger.warn({ event: 'websocket.refused', ip: socket.remoteAddress }, 'connection closed: %s', reason)
  })
  // history streams: JSON text out, nothing expected in
  const streams = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false, clientTracking: false })
  const packetSize = new PacketSizeGuard(limits.maxPacketSize, (stream, reason) => {
    stats.packetsRefused++
    logger.warn({ ip: (stream as Socket).remoteAddress }, 'connection closed: %s', reason)
  })
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const offered = String(req.headers['sec-websocket-protocol'] ?? '').split(',').map(p => p.trim())
    const path = (req.url ?? '/').split('?')[0]!
    if (!offered.includes('mqtt') && !offered.includes('mqttv3.1') && isStreamPath(path)) {
      serveStreamUpgrade(req, socket, head, streams, history).catch(err => logger.error({ err }, 'history stream upgrade failed'))
      return
    }
    const accepted = acceptUpgrade(req, socket, chooseProtocol)
    if ('refused' in accepted) {
      stats.webSocketRefused++
      logger.warn({ event: 'websocket.refused', ip: req.socket.remoteAddress }, 'WebSocket handshake refused: %s', accepted.refused)
      return
    }
    const conn = socket as Socket
    guard.handedOver(rawSocket(conn))
    framing.install(conn, head)
    packetSize.watch(conn)
    deps.handle(conn)
  })
  return await serveListener(server, config, {
    key,
    source: deps.source,
    logger,
    description: config.tls ? 'MQTT over WebSocket/TLS' : 'MQTT over WebSocket',
    beforeClose: () => {
      streams.close()
      server.closeAllConnections?.()
    }
  })
}
