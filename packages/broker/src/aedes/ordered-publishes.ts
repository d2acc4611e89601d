import type { Aedes, Client } from 'aedes'
import type { MQEmitter } from 'mqemitter'
import type { PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'

type Emit = MQEmitter['emit']
type Message = Parameters<Emit>[0]

/** One client's publishes: one is on its way to the bus (`busy`), the others wait their turn. */
interface Lane {
  busy: boolean
  pumping: boolean
  waiting: Array<() => void>
}

/**
 * Written against Aedes 1.2, aedes.js `publish` (publishFuncsQoS: storeRetained,
 * enqueueOffline, emitPacket; aedes-packet gives the message ++broker.counter) and
 * lib/client.js (a client's packets of one read are handled side by side). Each publish
 * reaches the message bus (emitPacket) only after its store steps — the retained store for a
 * retained message, the queues of offline persistent sessions for QoS 1 and 2 — which take
 * longer for some messages than for others, so one client's messages overtook each other,
 * against [MQTT-4.6.0-5] (ordered topics).
 *
 * Here a client's publish starts only once its previous one has reached the bus (or failed):
 * store steps of one client run one after another, deliveries do not wait for each other, and
 * different clients run side by side. Upstream: docs/upstream.md.
 *
 * QoS 2 publishes are ordered from the moment Aedes publishes them; the duplicate check before
 * (a store lookup) can still let one overtake another when a client has several in flight.
 */
export function orderPublishesPerClient (broker: Aedes): void {
  const internals = brokerInternals(broker)
  const publish = internals.publish.bind(broker)
  const mq = internals.mq
  const emit: Emit = mq.emit.bind(mq)
  /** brokerCounter of a message on its way -> what to do once it is on the bus */
  const onBus = new Map<number, () => void>()
  mq.emit = (message: Message, callback?: (error?: Error) => void) => {
    const reached = message.brokerId === internals.id ? onBus.get(message.brokerCounter as number) : undefined
    emit(message, callback)
    reached?.()
  }
  const lanes = new WeakMap<Client, Lane>()
  // a loop, not recursion: a publish that reaches the bus at once lets the next one start
  const pump = (client: Client, lane: Lane): void => {
    if (lane.pumping) return
    lane.pumping = true
    while (!lane.busy) {
      const start = lane.waiting.shift()
      if (start === undefined) break
      lane.busy = true
      start()
    }
    lane.pumping = false
    if (!lane.busy && lane.waiting.length === 0) lanes.delete(client)
  }
  internals.publish = (packet, client, done) => {
    if (typeof client === 'function' || client === null || client === undefined) {
      publish(packet, client, done)
      return
    }
    let lane = lanes.get(client)
    if (lane === undefined) lanes.set(client, lane = { busy: false, pumping: false, waiting: [] })
    const own = lane
    own.waiting.push(() => {
      const counter = internals.counter + 1 // the one aedes-packet is about to take
      let passed = false
      const pass = (): void => {
        if (passed) return
        passed = true
        onBus.delete(counter)
        own.busy = false
        pump(client, own)
      }
      onBus.set(counter, pass)
      publish(packet, client, (err?: Error) => {
        pass()
        done?.(err)
      })
    })
    pump(client, own)
  }
}

export const orderedPublishesContract: PatchContract = {
  patch: 'ordered-publishes.ts',
  package: 'aedes',
  writtenAgainst: 'aedes.js (publish: new Packet(packet, this), then publishFuncsQoS: storeRetained, enqueueOffline, emitPacket -> mq.emit) and aedes-packet (brokerCounter = ++broker.counter)',
  sources: {
    'aedes.js': [
      'const p = new Packet(packet, this)',
      'const publishFuncsQoS = [\n  storeRetained,\n  enqueueOffline,\n  emitPacket,\n  callPublished\n]',
      'this.broker.mq.emit(packet, done)'
    ]
  },
  verify: ({ broker }) => typeof brokerInternals(broker).counter === 'number' ? [] : ['broker.counter is not a number']
}
