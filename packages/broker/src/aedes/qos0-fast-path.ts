import type { Aedes, AedesPublishPacket, Client } from 'aedes'
import mqttPacket from 'mqtt-packet'
import { expect, type PatchContract } from './contract.js'
import { wasJustDelivered } from './exact-dedupe.js'
import { grantedQos } from './granted-qos.js'
import { brokerInternals, clientInternals, declaredClient, type Callback, type ClientInternals, type Deliver } from './internals.js'
import type { WriteCoalescer } from './write-coalescer.js'

type Publish = AedesPublishPacket & { clientId?: string, nl?: boolean, properties?: unknown }

/** lib/handlers/subscribe.js `Subscription`: what a client keeps per filter */
interface Subscription { qos: number, func: Deliver, rap?: boolean, nl?: boolean }

// what the fast path keeps on Aedes' function for a subscription (see the class comment)
const FILTER = Symbol('firehose.qos0FastPath.filter')
const CLIENT = Symbol('firehose.qos0FastPath.client')
const FLAGS = Symbol('firehose.qos0FastPath.flags')
const LEARNT = 1
const NO_LOCAL = 2
const KEEP_RETAIN = 4
const SKIPS_DOLLAR = 8
type Marked = Deliver & { [FILTER]?: string, [CLIENT]?: ClientInternals | null, [FLAGS]?: number }

/** mqemitter 7.1's fan-out of one message (a fastparallel without results) and the release it calls after */
interface MqInternals {
  _parallel: (that: unknown, toCall: unknown, message: unknown, done?: () => void) => void
  _released: () => void
}

const DONE = 0
const WAITING = 1

/** One message's deliveries: the emitter's callback, then its release, once every one is done (as fastparallel's NoResultsHolder). */
class MessageDeliveries {
  /** deliveries not done yet, and the fan-out loop itself */
  pending = 1
  readonly #that: unknown
  readonly #done: (() => void) | undefined
  readonly #mq: MqInternals
  constructor (that: unknown, done: (() => void) | undefined, mq: MqInternals) {
    this.#that = that
    this.#done = done
    this.#mq = mq
  }

  readonly release = (): void => {
    if (--this.pending !== 0) return
    this.#done?.call(this.#that)
    this.#mq._released()
  }
}

/** As fastparallel calls each function: a function of one argument gets only the callback. */
function callAsFastparallel (that: unknown, func: Deliver, packet: Publish, callback: Callback): void {
  if (func.length === 1) (func as unknown as (callback: Callback) => void).call(that, callback)
  else func.call(that, packet, callback)
}

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
 *
 * A QoS 0 subscription also skips Aedes' per-delivery copy of the message and the calls around
 * it: lib/handlers/subscribe.js registers, for each subscription, a function that makes an
 * aedes-packet `Packet` of every message (to set no-local and clear retain on it) and calls
 * deliver0 with it, and mqemitter calls each of those through fastparallel — per subscriber per
 * message an allocation, four `hasOwnProperty` calls, a `Function.length` read and three calls
 * before any delivery work. Aedes' function is private to its module and knows its client only
 * in its closure, so:
 * - `broker.subscribe` marks the function it is given with its filter (three symbol properties
 *   on Aedes' closure, ~40 bytes per subscription; no function of ours per subscription);
 * - the broker's mqemitter fans each message out with the fast path's loop (`#fanOut`, in place
 *   of its fastparallel `_parallel`): the first message that a marked function hands,
 *   synchronously, to a client's deliver0 shows whose it is, and if the client keeps that
 *   function in a QoS 0 subscription for that filter, the loop delivers later messages to that
 *   client itself, with the rules of Aedes' function (no-local and retain-as-published read from
 *   the subscription, no `$` topic to a filter starting with a wildcard). A QoS 1 or 2 message
 *   (the bridges publish at QoS 2) goes this way too when none of the client's subscriptions
 *   matching its topic is granted more than QoS 0 [MQTT-3.3.5-1], as a QoS 0 view of the message
 *   made once per message: nothing on this path writes to the message itself (authorizeForward
 *   changes only the QoS of QoS 1/2 packets). Every
 *   other function (QoS 1/2 subscriptions, MQTT 5 clients, the broker's own) is called as
 *   fastparallel calls it, and the emitter's callback and its release come once every delivery
 *   of the message is done, as with fastparallel.
 * (Telling the client at SUBSCRIBE instead, from Aedes reading `client.deliver0`, needs an
 * accessor on the client, which turns every client object into a dictionary: slower loads on
 * every delivery. A function of ours per subscription in place of Aedes' cost ~250 bytes per
 * subscriber.)
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
  /** subscriptions that deliver without Aedes' copy, learned so far, and the deliveries they made (the contract test reads them) */
  sharedSubscriptions = 0
  directDeliveries = 0
  // set while the fan-out loop calls a marked function it has not learnt yet
  #learning: Marked | undefined

  constructor (broker: Aedes, coalescer: WriteCoalescer) {
    this.#broker = broker
    this.#coalescer = coalescer
    const subscribe = broker.subscribe
    broker.subscribe = (filter, func, done) => {
      const marked = func as unknown as Marked
      // the same order every time: every marked function shares one hidden class
      if (marked[FILTER] === undefined) {
        marked[FILTER] = filter
        marked[CLIENT] = null
        marked[FLAGS] = 0
      }
      subscribe.call(broker, filter, func, done)
    }
    const mq = brokerInternals(broker).mq as unknown as MqInternals
    const parallel = mq._parallel
    mq._parallel = (that, toCall, message, done) => {
      if (!Array.isArray(toCall) || toCall.length === 0) parallel(that, toCall, message, done)
      else this.#fanOut(that, toCall as Marked[], message as Publish, done, mq)
    }
  }

  /** Takes over QoS 0 delivery for `client`, right after `broker.handle()` made it, before any SUBSCRIBE. */
  install (aedesClient: Client): void {
    const client = clientInternals(aedesClient)
    const fallback = client.deliver0
    // Aedes calls deliver0 unbound (a subscription keeps the function), hence a closure
    client.deliver0 = (packet, callback) => {
      const learning = this.#learning
      if (learning !== undefined) {
        this.#learning = undefined
        this.#learn(learning, client)
      }
      this.#deliver(client, packet as Publish, callback, fallback)
    }
  }

  // one message to every subscription function it matched, in their order (mqemitter's _parallel)
  #fanOut (that: unknown, funcs: Marked[], packet: Publish, done: (() => void) | undefined, mq: MqInternals): void {
    const deliveries = new MessageDeliveries(that, done, mq)
    let direct = false
    // a QoS 1/2 message as QoS 0 subscribers get it, made at the first of them
    let atQos0: Publish | undefined = packet.qos === 0 ? packet : undefined
    for (let i = 0; i < funcs.length; i++) {
      const func = funcs[i]!
      const client = func[CLIENT]
      if (client != null && this.#fits(client, packet) && this.#atQos0(client, packet)) {
        const flags = func[FLAGS]!
        direct = true
        // [MQTT-4.7.2-1], as Aedes' blockDollarSignTopics
        if ((flags & SKIPS_DOLLAR) !== 0 && packet.topic.charCodeAt(0) === 36 /* $ */) continue
        this.directDeliveries++
        atQos0 ??= { ...packet, qos: 0 }
        if (this.#send(client, atQos0, (flags & NO_LOCAL) !== 0, (flags & KEEP_RETAIN) !== 0, deliveries.release) === WAITING) deliveries.pending++
        continue
      }
      deliveries.pending++
      if (func[FILTER] === undefined || (func[FLAGS]! & LEARNT) !== 0) {
        callAsFastparallel(that, func, packet, deliveries.release)
        continue
      }
      this.#learning = func
      try {
        callAsFastparallel(that, func, packet, deliveries.release)
      } finally {
        this.#learning = undefined
      }
    }
    // the direct deliveries are done once this turn's writes are let go, as Aedes' deliver0's
    if (direct) this.#coalescer.afterFlush(deliveries.release)
    else deliveries.release()
  }

  // `client`'s deliver0 was reached from `func`: whose subscription it is
  #learn (func: Marked, client: ClientInternals): void {
    const filter = func[FILTER]!
    const subscription = client.subscriptions[filter] as Subscription | undefined
    func[FLAGS] = LEARNT
    if (subscription?.func !== func || subscription.qos !== 0) return // not a QoS 0 subscription of Aedes': its function, always
    func[CLIENT] = client
    const first = filter.charCodeAt(0)
    func[FLAGS] = LEARNT | (subscription.nl === true ? NO_LOCAL : 0) | (subscription.rap === true ? KEEP_RETAIN : 0) |
      (first === 43 /* + */ || first === 35 /* # */ ? SKIPS_DOLLAR : 0)
    this.sharedSubscriptions++
  }

  /** Whether the fast path can write `packet` to `client` (else Aedes does). */
  #fits (client: ClientInternals, packet: Publish): boolean {
    return (client.version === 3 || client.version === 4) && packet.properties === undefined &&
      (client.connected || client.connecting) && !client.conn.destroyed
  }

  /** [MQTT-3.3.5-1] Whether `client` gets `packet` at QoS 0: the highest QoS of its subscriptions matching the topic, capped by the message's. */
  #atQos0 (client: ClientInternals, packet: Publish): boolean {
    return packet.qos === 0 || grantedQos(declaredClient(client), packet.topic) === 0
  }

  #deliver (client: ClientInternals, packet: Publish, callback: Callback, fallback: Deliver): void {
    if (!this.#fits(client, packet)) {
      fallback(packet, callback)
      return
    }
    // when another subscription is above QoS 0, this delivery must not go first at QoS 0 (that
    // one's would then be a repeat, dropped): Aedes' QoS path delivers it at that QoS
    if (!this.#atQos0(client, packet)) {
      if (wasJustDelivered(declaredClient(client), packet)) this.#coalescer.afterFlush(callback)
      else client.deliverQoS(packet, callback)
      return
    }
    // Aedes' copy already carries the subscription's no-local and retain-as-published
    if (this.#send(client, packet, packet.nl === true, true, callback) === DONE) this.#coalescer.afterFlush(callback)
  }

  /** Writes (or queues) `packet` for `client`: DONE when the delivery is done with this turn's writes, WAITING when `callback` is called once the connection drains. */
  #send (client: ClientInternals, packet: Publish, noLocal: boolean, keepRetain: boolean, callback: Callback): typeof DONE | typeof WAITING {
    if (noLocal && packet.clientId === client.id) return DONE
    const toForward = this.#broker.authorizeForward(declaredClient(client), packet) as Publish | null | undefined
    if (!toForward) return DONE
    const conn = client.conn
    const bytes = this.#encode(toForward, client.version as 3 | 4 /* #fits */, keepRetain && toForward.retain)
    this.#coalescer.hold(conn)
    if (this.#coalescer.queue(conn, bytes)) return DONE
    if (!conn.write(bytes) && !client.errored) {
      // as Aedes' deliver0: an error (the connection closed meanwhile) ends the client, never the caller
      client.waitForDrain(err => {
        client._onError(err)
        callback()
      })
      return WAITING
    }
    return DONE
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
  writtenAgainst: 'lib/client.js (Client constructor: deliver0, deliverQoS; waitForDrain, _onError) and lib/handlers/subscribe.js (addSubs: handlePacketSubscription calls deliver0 synchronously, blockDollarSignTopics, the Subscription kept with the function given to broker.subscribe)',
  sources: {
    'lib/handlers/subscribe.js': [
      'let func = qos > 0 ? client.deliverQoS : client.deliver0',
      '_packet = new Packet(_packet, broker)\n    _packet.nl = nl\n    if (!rap) _packet.retain = false\n    deliverFunc(_packet, cb)',
      'if (isStartsWithWildcard(topic)) {\n    func = blockDollarSignTopics(func)',
      'if (packet.topic.charCodeAt(0) === 36) {\n      cb()',
      'client.subscriptions[topic] = new Subscription(qos, func, rh, rap, nl)\n    broker.subscribe(topic, func, done)'
    ]
  },
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

/** The fast path fans messages out in place of mqemitter's fastparallel: how mqemitter calls it, and what it calls after. */
export const qos0FanOutContract: PatchContract = {
  patch: 'qos0-fast-path.ts',
  package: 'mqemitter',
  writtenAgainst: 'mqemitter.js (MQEmitter constructor: _parallel, a fastparallel without results whose release calls `released`, kept as _released; _do: _parallel(this, matches, message, callback)); Aedes\' broker.subscribe(topic, func, done) registers func with mq.on',
  sources: {
    'mqemitter.js': [
      'this._parallel = fastparallel({\n    results: false,\n    released\n  })',
      'this._released = released',
      'const matches = this._matcher.match(message.topic)\n\n  this.current++\n  this._parallel(this, matches, message, callback)'
    ]
  },
  verify ({ broker }) {
    const problems: string[] = []
    const mq = brokerInternals(broker).mq as unknown as Partial<MqInternals>
    expect(problems, typeof mq._parallel === 'function' && typeof mq._released === 'function', 'the broker\'s mq has no _parallel / _released functions')
    expect(problems, typeof broker.subscribe === 'function' && broker.subscribe.length === 3, 'broker.subscribe is not a function of (topic, func, done)')
    return problems
  }
}
