import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { ListenerConfig } from '../config/types.js'
import { guardPacketSize } from './packet-size-guard.js'
import { writeWholeFrames } from '../aedes/write-coalescer.js'
import { rawSocket, serveListener, writeBufferBytes, type Listener } from './listener.js'
import type { ListenerDeps } from './tcp.js'
import { readTlsOptions } from './tls-options.js'

/** MQTT subprotocols offered by browsers' clients: MQTT 3.1.1 (`mqtt`) and 3.1 (`mqttv3.1`). */
function chooseProtocol (offered: Set<string>): string | false {
  if (offered.has('mqtt')) return 'mqtt'
  if (offered.has('mqttv3.1')) return 'mqttv3.1'
  return false
}

function explain (_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain; charset=utf-8', upgrade: 'websocket' })
  res.end('Firehose: connect with an MQTT client over WebSocket (subprotocol "mqtt"), on any path.\n')
}

/** MQTT over WebSocket (TLS when the listener has `tls`), on any path, with ws. */
export async function startWebSocketListener (config: ListenerConfig, key: string, deps: ListenerDeps): Promise<Listener> {
  const { guard, limits, stats } = deps
  const logger = deps.logger.child({ listener: config.name })
  const server = config.tls === undefined
    ? createHttpServer(explain)
    : createHttpsServer({ ...await readTlsOptions(config.tls, key, deps.source), handshakeTimeout: limits.connectTimeout * 1000 }, explain)
  server.headersTimeout = limits.connectTimeout * 1000
  server.requestTimeout = limits.connectTimeout * 1000
  // the raw TCP socket: limits apply before TLS and HTTP parsing
  server.on('connection', (socket: Socket) => { guard.admit(socket, config.name) })

  const wss = new WebSocketServer({
    server,
    handleProtocols: chooseProtocol,
    // one MQTT packet may span several frames, but a single frame beyond the packet limit is never valid
    maxPayload: limits.maxPacketSize,
    perMessageDeflate: false,
    clientTracking: false
  })
  wss.on('connection', (ws, req) => {
    guard.handedOver(rawSocket(req.socket))
    const stream = createWebSocketStream(ws, { writableHighWaterMark: writeBufferBytes(limits) })
    // authorize-forward reads ws.bufferedAmount to spot stalled subscribers
    Object.defineProperty(stream, 'socket', { value: ws })
    stream.on('error', err => logger.debug({ ip: req.socket.remoteAddress, err: err.message }, 'websocket stream error'))
    guardPacketSize(stream, limits.maxPacketSize, reason => {
      stats.packetsRefused++
      logger.warn({ ip: req.socket.remoteAddress }, 'connection closed: %s', reason)
    })
    writeWholeFrames(stream)
    deps.handle(stream, req)
  })
  wss.on('error', err => logger.error({ err }, 'websocket server error'))
  return await serveListener(server, config, {
    key,
    source: deps.source,
    logger,
    description: config.tls ? 'MQTT over WebSocket/TLS' : 'MQTT over WebSocket',
    beforeClose: () => {
      wss.close()
      server.closeAllConnections?.()
    }
  })
}
