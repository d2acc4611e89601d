import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { expect, type PatchContract } from './contract.js'
import { clientInternals, declaredClient, type Callback, type ClientInternals, type Deliver } from './internals.js'
import type { WriteCoalescer } from './write-coalescer.js'

type Publish = AedesPublishPacket & { clientId?: string, nl?: boolean, properties?: unknown }

/** lib/handlers/subscribe.js `Subscription`: what a client keeps per filter */
interface Subscription { qos: number, func: Deliver, rap?: boolean, nl?: boolean }

/**
 * QoS 0 delivery, the fan-out hot path, done once per message instead of once per subscriber.
 *
 * Written against Aedes 1.2, lib/client.js: the Client constructor's `deliver0` closure, which
 * copies the packet, re-encodes it with mqtt-packet for every subscriber, writes it as five
 * chunks (mqtt-packet writes each field apart), and schedules two setImmediate callbacks per delivery. Here a message's PUBLISH
 * bytes are encoded once (all subscribers of a message get the same bytes for QoS 0 on MQTT
 * 3.1/3.1.1), written as one chunk, and the deliveries of one event-loop turn complete
 * together after the coalesced write. Upstream proposal: docs/upstream.md.
 *
 * Everything else is still Aedes': the same checks in the same order (no-local, then
 * authorizeForward, which also suppresses duplicates: exact-dedupe.ts), waiting for drain
 * when the write buffer is full, and Aedes' own `deliver0` for what this does not cover (MQTT 5 sessions,
 * packets with properties, connections not yet or no longer up).
 *
 * A QoS 0 subscription also skips Aedes' per-delivery copy of the message: lib/handlers/subscribe.js
 * registers, for each subscription, a function that makes an aedes-packet `Packet` of every
 * message (to set no-local and clear retain on it) and calls deliver0 with it — one allocation
 * per subscriber per message, 14% of the broker's busy time at 500 subscribers. That function is
 * private to its module and knows its client only in its closure, so `broker.subscribe`
 * registers a function of the fast path's in its place, which learns the client at the first
 * message that Aedes' function hands, synchronously, to that client's deliver0. It then checks
 * that the client keeps Aedes' function in a QoS 0 subscription for that filter; if so, the
 * messages after it that the fast path can write go without the copy, with the rules of Aedes'
 * function (no-local and retain-as-published read from the subscription, no `$` topic to a
 * filter starting with a wildcard) — nothing on this path writes to the message
 * (authorizeForward changes only the QoS of QoS 1/2 copies); everything else goes to Aedes'
 * function. `broker.unsubscribe`, given Aedes' function, removes the one registered for it.
 * (Telling the client at SUBSCRIBE instead, from Aedes reading `client.deliver0`, needs an
 * accessor on the client, which turns every client object into a dictionary: slower loads on
 * every delivery.)
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
  /** subscriptions that deliver QoS 0 messages without Aedes' copy, learned so far (the contract test reads it) */
  sharedSubscriptions = 0
  // set while a registered function runs Aedes' own: told the client whose deliver0 it reaches
  #learning: ((client: ClientInternals) => void) | undefined

  constructor (broker: Aedes, coalescer: WriteCoalescer) {
    this.#broker = broker
    this.#coalescer = coalescer
    const subscribe = broker.subscribe
    const unsubscribe = broker.unsubscribe
    // Aedes' function -> the one registered in its place
    const registered = new WeakMap<Deliver, Deliver>()
    type Func = Parameters<Aedes['subscribe']>[1]
    broker.subscribe = (filter, func, done) => {
      const own = this.#withoutCopy(filter, func as unknown as Deliver)
      registered.set(func as unknown as Deliver, own)
      subscribe.call(broker, filter, own as unknown as Func, done)
    }
    broker.unsubscribe = (filter, func, done) => {
      unsubscribe.call(broker, filter, (registered.get(func as unknown as Deliver) ?? func) as Func, done)
    }
  }

  /** Takes over QoS 0 delivery for `client`, right after `broker.handle()` made it, before any SUBSCRIBE. */
  install (aedesClient: Client): void {
    const client = clientInternals(aedesClient)
    const fallback = client.deliver0
    // Aedes calls deliver0 unbound (a subscription keeps the function), hence a closure
    client.deliver0 = (packet, callback) => {
      if (this.#learning !== undefined) this.#learning(client)
      this.#deliver(client, packet as Publish, callback, fallback)
    }
  }

  /** The function to register for `filter` instead of `func`. */
  #withoutCopy (filter: string, func: Deliver): Deliver {
    let client: ClientInternals | undefined
    let learnt = false
    let noLocal = false
    let keepRetain = false
    // [MQTT-4.7.2-1], as Aedes' blockDollarSignTopics: a filter starting with a wildcard matches no $ topic
    const skipsDollarTopics = filter.charCodeAt(0) === 43 /* + */ || filter.charCodeAt(0) === 35 /* # */
    const learn = (subscriber: ClientInternals): void => {
      this.#learning = undefined
      learnt = true
      const subscription = subscriber.subscriptions[filter] as Subscription | undefined
      if (subscription?.func !== func || subscription.qos !== 0) return // not a QoS 0 subscription of Aedes': its function, always
      client = subscriber
      noLocal = subscription.nl === true
      keepRetain = subscription.rap === true
      this.sharedSubscriptions++
    }
    return (packet, callback) => {
      if (client !== undefined && packet.qos === 0 && this.#fits(client, packet as Publish)) {
        if (skipsDollarTopics && packet.topic.charCodeAt(0) === 36 /* $ */) callback()
        else this.#send(client, packet as Publish, noLocal, keepRetain, callback)
      } else if (learnt) {
        func(packet, callback)
      } else {
        this.#learning = learn
        try {
          func(packet, callback)
        } finally {
          this.#learning = undefined
        }
      }
    }
  }

  /** Whether the fast path can write `packet` to `client` (else Aedes does). */
  #fits (client: ClientInternals, packet: Publish): boolean {
    return (client.version === 3 || client.version === 4) && packet.properties === undefined &&
      (client.connected || client.connecting) && !client.conn.destroyed
  }

  #deliver (client: ClientInternals, packet: Publish, callback: Callback, fallback: Deliver): void {
    if (!this.#fits(client, packet)) {
      fallback(packet, callback)
      return
    }
    // Aedes' copy already carries the subscription's no-local and retain-as-published
    this.#send(client, packet, packet.nl === true, true, callback)
  }

  #send (client: ClientInternals, packet: Publish, noLocal: boolean, keepRetain: boolean, callback: Callback): void {
    if (noLocal && packet.clientId === client.id) {
      this.#coalescer.afterFlush(callback)
      return
    }
    const toForward = this.#broker.authorizeForward(declaredClient(client), packet) as Publish | null | undefined
    if (!toForward) {
      this.#coalescer.afterFlush(callback)
      return
    }
    const conn = client.conn
    this.#coalescer.hold(conn)
    if (!conn.write(this.#encode(toForward, client.version as 3 | 4 /* #fits */, keepRetain && toForward.retain)) && !client.errored) {
      // as Aedes' deliver0: an error (the connection closed meanwhile) ends the client, never the caller
      client.waitForDrain(err => {
        client._onError(err)
        callback()
      })
      return
    }
    this.#coalescer.afterFlush(callback)
  }

  #encode (packet: Publish, version: number, retain: boolean): Buffer {
    const flags = version | (retain ? 16 : 0) | (packet.dup ? 32 : 0)
    const counter = packet.brokerCounter ?? 0
    if (counter !== 0 && counter === this.#lastCounter && packet.brokerId === this.#lastBrokerId &&
      packet.payload === this.#lastPayload && packet.topic === this.#lastTopic && flags === this.#lastFlags && this.#lastBytes !== undefined) {
      return this.#lastBytes
    }
    const bytes = mqttPacket.generate({
      cmd: 'publish', topic: packet.topic, payload: packet.payload, qos: 0, retain, dup: packet.dup
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
  writtenAgainst: 'lib/client.js (Client constructor: deliver0, deliverQoS; waitForDrain, _onError), lib/handlers/subscribe.js (addSubs: handlePacketSubscription calls deliver0 synchronously, blockDollarSignTopics, the Subscription kept with the function given to broker.subscribe) and lib/handlers/unsubscribe.js (unsubscribes the function the Subscription keeps)',
  sources: {
    'lib/handlers/subscribe.js': [
      'let func = qos > 0 ? client.deliverQoS : client.deliver0',
      '_packet = new Packet(_packet, broker)\n    _packet.nl = nl\n    if (!rap) _packet.retain = false\n    deliverFunc(_packet, cb)',
      'if (isStartsWithWildcard(topic)) {\n    func = blockDollarSignTopics(func)',
      'if (packet.topic.charCodeAt(0) === 36) {\n      cb()',
      'client.subscriptions[topic] = new Subscription(qos, func, rh, rap, nl)\n    broker.subscribe(topic, func, done)',
      'broker.unsubscribe(topic, client.subscriptions[topic].func)'
    ],
    'lib/handlers/unsubscribe.js': ['const func = s.func']
  },
  verify ({ broker, client }) {
    const problems: string[] = []
    expect(problems, typeof client.deliver0 === 'function' && client.deliver0.name === 'deliverQoS0', 'client.deliver0 is not Aedes\' deliverQoS0 function')
    expect(problems, typeof client.deliverQoS === 'function' && client.deliverQoS.toString().includes('that.deliver0('), 'client.deliverQoS no longer downgrades through client.deliver0')
    expect(problems, typeof broker.subscribe === 'function' && broker.subscribe.length === 3 && typeof broker.unsubscribe === 'function' && broker.unsubscribe.length === 3,
      'broker.subscribe / broker.unsubscribe are not functions of (topic, func, done)')
    expect(problems, typeof client.waitForDrain === 'function' && typeof client._onError === 'function', 'client.waitForDrain / client._onError are missing')
    expect(problems, client.version === null && client.connected === false && client.connecting === false && client.errored === false,
      'client.version / connected / connecting / errored do not start as null / false')
    return problems
  }
}
