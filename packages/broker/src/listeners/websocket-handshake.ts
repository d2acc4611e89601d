import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'

/** RFC 6455 1.3: appended to the client's key before hashing it into Sec-WebSocket-Accept. */
const ACCEPT_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
/** base64 of 16 bytes */
const KEY = /^[+/0-9A-Za-z]{22}==$/
/** RFC 7230 token characters, which a subprotocol name is made of */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * The server's side of the WebSocket opening handshake (RFC 6455 4.2) for MQTT connections,
 * with the checks and answers of ws 8's `WebSocketServer.handleUpgrade` (405, 400, 400 with the
 * versions it speaks): on success the 101 response is written and the socket carries WebSocket
 * frames from here on (websocket-framing.ts). Firehose does this itself rather than through ws
 * because ws would make a WebSocket, its receiver and sender for every connection, which were
 * most of an idle MQTT-over-WebSocket subscriber's memory; history streams still use ws.
 *
 * Returns the chosen subprotocol ('' for none: the client decides whether it goes on without
 * one, as with ws), or why the request was refused (the answer written, the socket ended).
 */
export function acceptUpgrade (req: IncomingMessage, socket: Duplex, choose: (offered: Set<string>) => string | false): { protocol: string } | { refused: string } {
  const key = req.headers['sec-websocket-key']
  const version = Number(req.headers['sec-websocket-version'])
  if (req.method !== 'GET') return refuse(socket, 405, 'Invalid HTTP method')
  if (req.headers.upgrade?.toLowerCase() !== 'websocket') return refuse(socket, 400, 'Invalid Upgrade header')
  if (key === undefined || !KEY.test(key)) return refuse(socket, 400, 'Missing or invalid Sec-WebSocket-Key header')
  if (version !== 13 && version !== 8) return refuse(socket, 400, 'Missing or invalid Sec-WebSocket-Version header', 'Sec-WebSocket-Version: 13, 8\r\n')
  const offered = parseProtocols(req.headers['sec-websocket-protocol'])
  if (offered === undefined) return refuse(socket, 400, 'Invalid Sec-WebSocket-Protocol header')
  if (!socket.readable || !socket.writable) {
    socket.destroy()
    return { refused: 'connection closed during the handshake' }
  }
  const protocol = choose(offered)
  const accept = createHash('sha1').update(key + ACCEPT_GUID).digest('base64')
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n` +
    (protocol === false ? '' : `Sec-WebSocket-Protocol: ${protocol}\r\n`) +
    '\r\n'
  )
  return { protocol: protocol === false ? '' : protocol }
}

/** The offered subprotocols: a comma-separated list of tokens; undefined when malformed. */
export function parseProtocols (header: string | undefined): Set<string> | undefined {
  const offered = new Set<string>()
  if (header === undefined) return offered
  for (const part of header.split(',')) {
    const name = part.trim()
    if (!TOKEN.test(name) || offered.has(name)) return undefined
    offered.add(name)
  }
  return offered
}

function refuse (socket: Duplex, status: number, message: string, headers = ''): { refused: string } {
  if (socket.writable) {
    const reason = status === 405 ? 'Method Not Allowed' : 'Bad Request'
    socket.once('finish', () => socket.destroy())
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/html\r\nContent-Length: ${Buffer.byteLength(message)}\r\n${headers}\r\n${message}`)
  } else {
    socket.destroy()
  }
  return { refused: message }
}
