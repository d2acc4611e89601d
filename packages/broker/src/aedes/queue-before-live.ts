import type { Aedes, AedesPublishPacket, Client, ConnectPacket } from 'aedes'
import { expect, type PatchContract } from './contract.js'
import { brokerInternals, clientInternals, type Callback, type Deliver } from './internals.js'

type PreConnect = (client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void) => void
type OutgoingStream = (client: Client) => AsyncIterable<AedesPublishPacket>

/** How long after its replay a session's replayed messages are remembered, to drop late live copies. */
export const REPLAYED_MEMORY_MS = 10_000

/** A reconnecting persistent session, from its CONNECT until its stored queue is written. */
interface Replay {
  /** true until the stored queue has been written to the subscriber */
  holding: boolean
  /** live deliveries that arrived meanwhile, in order, with the function they were meant for */
  held: Array<{ deliver: Deliver, packet: AedesPublishPacket }>
  /** `brokerId:brokerCounter` of each message the replay wrote */
  replayed: Set<string>
}

const keyOf = (packet: AedesPublishPacket): string => `${packet.brokerId}:${packet.brokerCounter}`

/**
 * Written against Aedes 1.2, lib/handlers/connect.js: a persistent session's subscriptions are
 * restored (restoreSubs) before its stored queue is written (emptyQueue, the last step), so a
 * message published while the queue was being replayed reached the subscriber before older
 * ones still in the queue — against [MQTT-4.6.0-5]; Mosquitto writes the queue first.
 *
 * Here, from CONNECT (clean session 0) until Aedes reports the client ready (`clientReady`,
 * emitted once emptyQueue has written the whole queue), live deliveries to that client are
 * held in order instead of written; then each is delivered as Aedes would have, except those
 * the replay already wrote. Nothing is lost by holding: every QoS 1/2 message for a persistent
 * session is in its stored queue before it is delivered live (Aedes' enqueueOffline runs
 * before emitPacket), so a held message is either in the replay or enqueued after the replay's
 * snapshot and delivered from the held list. Held messages are kept in memory for as long as
 * the replay takes. Upstream: docs/upstream.md.
 */
export function queueBeforeLive (broker: Aedes): void {
  const replays = new WeakMap<Client, Replay>()

  const preConnect = broker.preConnect.bind(broker) as PreConnect
  broker.preConnect = ((client: Client, packet: ConnectPacket, callback) => {
    if (packet.clean === false && !replays.has(client)) hold(client)
    preConnect(client, packet, callback)
  }) as PreConnect as typeof broker.preConnect

  function hold (client: Client): void {
    const replay: Replay = { holding: true, held: [], replayed: new Set() }
    replays.set(client, replay)
    const internals = clientInternals(client)
    // subscriptions keep the function they were made with, so the wrappers stay for the connection
    internals.deliver0 = holdingDeliver(replay, internals.deliver0)
    internals.deliverQoS = holdingDeliver(replay, internals.deliverQoS)
  }

  function holdingDeliver (replay: Replay, deliver: Deliver): Deliver {
    return (packet: AedesPublishPacket, callback: Callback) => {
      if (replay.holding) {
        replay.held.push({ deliver, packet })
        // the message is safe (stored, or QoS 0): the bus need not wait for this subscriber
        setImmediate(callback)
      } else if (replay.replayed.size > 0 && replay.replayed.delete(keyOf(packet))) {
        setImmediate(callback)
      } else {
        deliver(packet, callback)
      }
    }
  }

  const persistence = brokerInternals(broker).persistence as unknown as { outgoingStream: OutgoingStream }
  const outgoingStream = persistence.outgoingStream.bind(persistence)
  persistence.outgoingStream = (client: Client) => {
    const stream = outgoingStream(client)
    const replay = replays.get(client)
    if (replay === undefined) return stream
    return (async function * recorded () {
      for await (const packet of stream) {
        replay.replayed.add(keyOf(packet))
        yield packet
      }
    })()
  }

  broker.on('clientReady', client => {
    const replay = replays.get(client)
    if (replay === undefined || !replay.holding) return
    replay.holding = false
    const held = replay.held
    replay.held = []
    for (const { deliver, packet } of held) {
      if (replay.replayed.delete(keyOf(packet))) continue
      deliver(packet, () => {})
    }
    // a live copy of a replayed message can still come (from Redis, in a cluster): dropped a while longer
    if (replay.replayed.size > 0) setTimeout(() => replay.replayed.clear(), REPLAYED_MEMORY_MS).unref()
  })
  // a client that never became ready (refused, or gone during the replay) keeps nothing: the
  // WeakMap entry goes with it, and its QoS 1/2 messages are still in its stored queue
}

export const queueBeforeLiveContract: PatchContract = {
  patch: 'queue-before-live.ts',
  package: 'aedes',
  writtenAgainst: 'lib/handlers/connect.js (connectActions: restoreSubs ... doConnack, emptyQueue; clientReady emitted after the last) and lib/handlers/subscribe.js (a subscription keeps client.deliverQoS or client.deliver0 as taken at SUBSCRIBE)',
  sources: {
    'lib/handlers/connect.js': [
      'client.broker.preConnect(client, packet, negate)',
      '  restoreSubs,\n  storeWill,\n  registerClient,\n  cleanIncoming,\n  doConnack,\n  emptyQueue\n]',
      'const outgoing = persistence.outgoingStream(client)',
      "this.client.broker.emit('clientReady', client)"
    ],
    'lib/handlers/subscribe.js': ['let func = qos > 0 ? client.deliverQoS : client.deliver0'],
    'aedes.js': ['this.preConnect = opts.preConnect']
  },
  verify: ({ broker, client }) => {
    const problems: string[] = []
    expect(problems, typeof client.deliverQoS === 'function' && typeof client.deliver0 === 'function', 'a client has no own deliverQoS/deliver0 functions')
    expect(problems, typeof brokerInternals(broker).persistence.outgoingStream === 'function', 'broker.persistence has no outgoingStream')
    return problems
  }
}
