import type { Client, PublishPacket } from 'aedes'
import type { AedesPersistence } from '../store.js'
import type { PatchContract } from './contract.js'

type Published = (packet: PublishPacket, client: Client | null, done: (err?: Error | null) => void) => void

/**
 * Aedes stores an incoming QoS 2 PUBLISH, then publishes it, then sends PUBREC; a
 * retransmitted PUBLISH whose id is stored is answered with PUBREC and not published again.
 * A broker that dies between the store and the end of the publish (in a cluster: another node
 * gets the retransmission) has the id stored but the message never published: it is lost,
 * though the publisher did everything right. Here the id is recorded only once the message is
 * published (queued for persistent sessions and handed to every node), so a retransmission
 * after a crash is published; what remains is a duplicate if the broker dies in the one write
 * between publishing and recording, instead of a loss.
 *
 * Written against Aedes 1.2: lib/handlers/publish.js (enqueuePublish, case 2:
 * incomingStorePacket, then broker.publish, then PUBREC) and aedes.js (callPublished passes
 * the packet object the handler published to the `published` option). Upstream: docs/upstream.md.
 *
 * A cluster node closes that last window too: qos2-published-once.ts records the id in the
 * same Redis script that publishes the message (`recordedWithPublish`).
 */
export function recordQos2AfterPublish (persistence: AedesPersistence, recordedWithPublish: WeakSet<PublishPacket> = new WeakSet()): Published {
  const store = (persistence.incomingStorePacket as (client: Client, packet: PublishPacket) => Promise<void>).bind(persistence)
  /** per client, the QoS 2 packets received and not yet published (gone with the client object) */
  const pending = new WeakMap<Client, Map<number, PublishPacket>>()
  persistence.incomingStorePacket = async (client: Client, packet: PublishPacket): Promise<void> => {
    let mine = pending.get(client)
    if (mine === undefined) pending.set(client, mine = new Map())
    mine.set(packet.messageId!, packet)
  }
  return function published (packet, client, done) {
    const mine = client === null ? undefined : pending.get(client)
    if (mine === undefined || packet.qos !== 2 || mine.get(packet.messageId!) !== packet) return done(null)
    mine.delete(packet.messageId!)
    // on a cluster node, recorded in the same script as the publish (qos2-published-once.ts)
    if (recordedWithPublish.delete(packet)) return done(null)
    store(client!, packet).then(() => done(null), done)
  }
}

export const recordQos2AfterPublishContract: PatchContract = {
  patch: 'record-qos2-after-publish.ts',
  package: 'aedes',
  writtenAgainst: 'lib/handlers/publish.js (enqueuePublish, QoS 2: incomingGetPacket, incomingStorePacket, broker.publish, PUBREC) and aedes.js (callPublished)',
  sources: {
    'lib/handlers/publish.js': [
      'client.broker.persistence.incomingGetPacket(client, packet)',
      'client.broker.persistence.incomingStorePacket(client, packet)',
      'client.broker.publish(packet, client, (err) => {'
    ],
    'aedes.js': ['this.broker.published(this.packet, this.client, done)']
  }
}
