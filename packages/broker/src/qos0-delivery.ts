import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import type { Writable } from 'node:stream'
import mqttPacket from 'mqtt-packet'
import type { WriteCoalescer } from './write-coalescer.js'

type Callback = () => void
type Deliver = (packet: AedesPublishPacket, callback: Callback) => void

/** The parts of an Aedes client (1.x, lib/client.js) this module reads or replaces. */
interface AedesClient {
  id: string | null
  version: number | null
  connected: boolean
  connecting: boolean
  errored: boolean
  conn: Writable
  duplicates: Record<string, number>
  deliver0: Deliver
  waitForDrain: (callback: (err?: Error) => void) => void
  _onError: (err?: Error) => void
}

type Publish = AedesPublishPacket & { clientId?: string, nl?: boolean, properties?: unknown }

/**
 * QoS 0 delivery, the fan-out hot path, done once per message instead of once per subscriber.
 *
 * Aedes' own `deliver0` (lib/client.js) copies the packet, re-encodes it with mqtt-packet for
 * every subscriber, writes it as four chunks, and schedules two setImmediate callbacks per
 * delivery. Here a message's PUBLISH bytes are encoded once (all subscribers of a message get
 * the same bytes for QoS 0 on MQTT 3.1/3.1.1), written as one chunk, and the deliveries of one
 * event-loop turn complete together after the coalesced write.
 *
 * Everything else is still Aedes': the same checks in the same order (no-local, duplicate
 * suppression by broker id and counter, authorizeForward), waiting for drain when the write
 * buffer is full, and Aedes' own `deliver0` for what this does not cover (MQTT 5 sessions,
 * packets with properties, connections not yet or no longer up).
 */
export class Qos0Delivery {
  readonly #coalescer: WriteCoalescer
  readonly #broker: Aedes
  // the last message encoded: deliveries of one message to its subscribers come one after another
  #lastBrokerId: string | undefined
  #lastCounter = 0
  #lastPayload: Buffer | undefined
  #lastTopic = ''
  #lastFlags = -1
  #lastBytes: Buffer | undefined

  constructor (broker: Aedes, coalescer: WriteCoalescer) {
    this.#broker = broker
    this.#coalescer = coalescer
  }

  /** Takes over QoS 0 delivery for `client`, right after `broker.handle()` made it. */
  install (aedesClient: Client): void {
    const client = aedesClient as unknown as AedesClient
    const fallback = client.deliver0
    // Aedes calls deliver0 unbound (it keeps the function in the subscription), hence a closure
    client.deliver0 = (packet, callback) => { this.#deliver(client, packet as Publish, callback, fallback) }
  }

  #deliver (client: AedesClient, packet: Publish, callback: Callback, fallback: Deliver): void {
    if ((client.version !== 3 && client.version !== 4) || packet.properties !== undefined ||
      !(client.connected || client.connecting) || client.conn.destroyed) {
      fallback(packet, callback)
      return
    }
    if ((packet.clientId === client.id && packet.nl === true) || !isNew(client, packet)) {
      this.#coalescer.afterFlush(callback)
      return
    }
    const toForward = this.#broker.authorizeForward(client as unknown as Client, packet) as Publish | null | undefined
    if (!toForward) {
      this.#coalescer.afterFlush(callback)
      return
    }
    const conn = client.conn
    this.#coalescer.hold(conn)
    if (!conn.write(this.#encode(toForward, client.version)) && !client.errored) {
      // as Aedes' deliver0: an error (the connection closed meanwhile) ends the client, never the caller
      client.waitForDrain(err => {
        client._onError(err)
        callback()
      })
      return
    }
    this.#coalescer.afterFlush(callback)
  }

  #encode (packet: Publish, version: number): Buffer {
    const flags = version | (packet.retain ? 16 : 0) | (packet.dup ? 32 : 0)
    const counter = packet.brokerCounter ?? 0
    if (counter !== 0 && counter === this.#lastCounter && packet.brokerId === this.#lastBrokerId &&
      packet.payload === this.#lastPayload && packet.topic === this.#lastTopic && flags === this.#lastFlags && this.#lastBytes !== undefined) {
      return this.#lastBytes
    }
    const bytes = mqttPacket.generate({
      cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: 0, retain: packet.retain, dup: packet.dup
    }, { protocolVersion: version })
    this.#lastBrokerId = packet.brokerId
    this.#lastCounter = counter
    this.#lastPayload = packet.payload as Buffer
    this.#lastTopic = packet.topic
    this.#lastFlags = flags
    this.#lastBytes = bytes
    return bytes
  }
}

/** Aedes' duplicate suppression (lib/client.js `dedupe`): a message from another broker of a cluster may arrive twice. */
function isNew (client: AedesClient, packet: Publish): boolean {
  const id = packet.brokerId
  if (!id) return true
  const counter = packet.brokerCounter ?? 0
  const fresh = (client.duplicates[id] ?? 0) < counter
  if (fresh) client.duplicates[id] = counter
  return fresh
}
