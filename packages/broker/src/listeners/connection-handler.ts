import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Aedes } from 'aedes'
import { watchClose } from '../aedes/close-watch.js'
import { installExactDedupe } from '../aedes/exact-dedupe.js'
import { inflightOnDemand } from '../aedes/inflight-on-demand.js'
import { ParserBufferList } from '../aedes/parser-buffer-list.js'
import { ParserSettings } from '../aedes/parser-settings.js'
import { Qos0FastPath } from '../aedes/qos0-fast-path.js'
import { StrictPackets } from '../aedes/strict-packets.js'
import { WriteCoalescer } from '../aedes/write-coalescer.js'
import type { StalledSubscriberGuard } from './stalled-subscriber.js'

/**
 * Where a WebSocket connection came from: the socket under its HTTP upgrade. Aedes keeps what it
 * is given as `client.req` for as long as the client is connected, and Firehose reads only the
 * address from it (hooks/context.ts `remoteAddress`); the upgrade's whole IncomingMessage
 * (headers, raw headers, a stream state) was about 1.2 KiB per idle WebSocket subscriber.
 */
export type ConnectionOrigin = Pick<IncomingMessage, 'socket'>

/** Hands a connection (TCP, TLS or WebSocket stream) to Aedes, on Firehose's fan-out path. */
export type ConnectionHandler = (stream: Duplex, origin?: ConnectionOrigin) => void

export function createConnectionHandler (broker: Aedes, stalled: StalledSubscriberGuard): ConnectionHandler {
  const coalescer = new WriteCoalescer()
  const qos0 = new Qos0FastPath(broker, coalescer)
  const strict = new StrictPackets()
  const bufferList = new ParserBufferList()
  const parserSettings = new ParserSettings()
  return (stream, origin) => {
    coalescer.attach(stream)
    stalled.watch(stream)
    // Aedes keeps the origin as client.req and reads only its connDetails (absent here) itself
    const client = origin === undefined ? broker.handle(stream) : broker.handle(stream, origin as IncomingMessage)
    // before its first byte is parsed (Aedes reads on the next turn)
    strict.install(client)
    bufferList.install(client)
    parserSettings.install(client)
    watchClose(client)
    inflightOnDemand(client)
    installExactDedupe(client)
    // before any SUBSCRIBE is read: Aedes keeps the client's deliver function in each subscription
    qos0.install(client)
  }
}
