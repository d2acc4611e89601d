import type { Duplex } from 'node:stream'
import type { Aedes } from 'aedes'
import { watchClose } from '../aedes/close-watch.js'
import { installExactDedupe } from '../aedes/exact-dedupe.js'
import { useFastRecords } from '../aedes/fast-records.js'
import { inflightOnDemand } from '../aedes/inflight-on-demand.js'
import { ParserBufferList } from '../aedes/parser-buffer-list.js'
import { ParserSettings } from '../aedes/parser-settings.js'
import { Qos0FastPath } from '../aedes/qos0-fast-path.js'
import { StrictPackets } from '../aedes/strict-packets.js'
import { WriteCoalescer } from '../aedes/write-coalescer.js'
import type { StalledSubscriberGuard } from './stalled-subscriber.js'

/**
 * Hands a connection to Aedes, on Firehose's fan-out path: a TCP or TLS socket, framed for
 * WebSocket after an upgrade (websocket-framing.ts). No HTTP request is given to Aedes, which
 * would keep it as `client.req` while the client is connected (about 1.2 KiB per idle
 * WebSocket subscriber): the socket has the client's address.
 */
export type ConnectionHandler = (stream: Duplex) => void

export function createConnectionHandler (broker: Aedes, stalled: StalledSubscriberGuard): ConnectionHandler {
  const coalescer = new WriteCoalescer()
  const qos0 = new Qos0FastPath(broker, coalescer)
  const strict = new StrictPackets()
  const bufferList = new ParserBufferList()
  const parserSettings = new ParserSettings()
  return stream => {
    coalescer.attach(stream)
    stalled.watch(stream)
    const client = broker.handle(stream)
    // before its first byte is parsed (Aedes reads on the next turn)
    strict.install(client)
    bufferList.install(client)
    parserSettings.install(client)
    watchClose(client)
    inflightOnDemand(client)
    installExactDedupe(client)
    // before any SUBSCRIBE is read: Aedes keeps the client's deliver function in each subscription
    qos0.install(client)
    // last: copies the listener tables as the patches above left them
    useFastRecords(client)
  }
}
