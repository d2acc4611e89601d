import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { expect, type PatchContract } from './contract.js'
import { clientInternals, declaredClient, type Callback, type ClientInternals, type Deliver } from './internals.js'
import type { WriteCoalescer } from './write-coalescer.js'

type Publish = AedesPublishPacket & { clientId?: string, nl?: boolean, properties?: unknown }

/**
 * QoS 0 delivery, the fan-out hot path, done once per message instead of once per subscriber.
 *
 * Written against Aedes 1.2, lib/client.js: the Client constructor's `deliver0` closure, which
 * copies the packet, re-encodes it with mqtt-packet for every subscriber, writes it as five
 * chunks (mqtt-packet writes each field apart), and schedules two setImmediate callbacks per delivery. Here a message's PUBLISH
 * bytes are encoded once (all subscribers of a message get the same bytes for QoS 0 on MQTT
 * 3.1/3.1.1), queued with the connection and written with the turn's others at its end
 * (write-coalescer.ts), and the deliveries of one event-loop turn complete together after it. Upstream proposal: docs/upstream.md.
 *
 * Everything else is still Aedes': the same checks in the same order (no-local, then
 * authorizeForward, which also suppresses duplicates: exact-dedupe.ts), waiting for drain
 * when the write buffer is full, and Aedes' own `deliver0` for what this does not cover (MQTT 5 sessions,
 * packets with properties, connections not yet or no longer up).
 */
export class Qos0FastPath {
  readonly #coalescer: WriteCoalescer
  readonly #broker: Aedes
  /** PUBLISH packets encoded: one per message, however many subscribers (the contract test reads it) */
  encodes = 0
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

  /** Takes over QoS 0 delivery for `client`, right after `broker.handle()` made it, before any SUBSCRIBE. */
  install (aedesClient: Client): void {
    const client = clientInternals(aedesClient)
    const fallback = client.deliver0
    // Aedes calls deliver0 unbound (a subscription keeps the function), hence a closure
    client.deliver0 = (packet, callback) => { this.#deliver(client, packet as Publish, callback, fallback) }
  }

  #deliver (client: ClientInternals, packet: Publish, callback: Callback, fallback: Deliver): void {
    if ((client.version !== 3 && client.version !== 4) || packet.properties !== undefined ||
      !(client.connected || client.connecting) || client.conn.destroyed) {
      fallback(packet, callback)
      return
    }
    if (packet.clientId === client.id && packet.nl === true) {
      this.#coalescer.afterFlush(callback)
      return
    }
    const toForward = this.#broker.authorizeForward(declaredClient(client), packet) as Publish | null | undefined
    if (!toForward) {
      this.#coalescer.afterFlush(callback)
      return
    }
    const conn = client.conn
    const bytes = this.#encode(toForward, client.version)
    this.#coalescer.hold(conn)
    if (this.#coalescer.queue(conn, bytes)) {
      this.#coalescer.afterFlush(callback)
      return
    }
    if (!conn.write(bytes) && !client.errored) {
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
    this.encodes++
    this.#lastBrokerId = packet.brokerId
    this.#lastCounter = counter
    this.#lastPayload = packet.payload as Buffer
    this.#lastTopic = packet.topic
    this.#lastFlags = flags
    this.#lastBytes = bytes
    return bytes
  }
}

export const qos0FastPathContract: PatchContract = {
  patch: 'qos0-fast-path.ts',
  package: 'aedes',
  writtenAgainst: 'lib/client.js (Client constructor: deliver0, deliverQoS; waitForDrain, _onError) and lib/handlers/subscribe.js (a subscription keeps client.deliver0)',
  sources: { 'lib/handlers/subscribe.js': ['client.deliverQoS : client.deliver0'] },
  verify ({ client }) {
    const problems: string[] = []
    expect(problems, typeof client.deliver0 === 'function' && client.deliver0.name === 'deliverQoS0', 'client.deliver0 is not Aedes\' deliverQoS0 function')
    expect(problems, typeof client.deliverQoS === 'function' && client.deliverQoS.toString().includes('that.deliver0('), 'client.deliverQoS no longer downgrades through client.deliver0')
    expect(problems, typeof client.waitForDrain === 'function' && typeof client._onError === 'function', 'client.waitForDrain / client._onError are missing')
    expect(problems, client.version === null && client.connected === false && client.connecting === false && client.errored === false,
      'client.version / connected / connecting / errored do not start as null / false')
    return problems
  }
}
