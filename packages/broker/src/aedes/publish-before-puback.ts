import type { Aedes, AuthorizePublishHandler, Client, PublishPacket } from 'aedes'
import type { PatchContract } from './contract.js'
import { brokerInternals, isWillOf } from './internals.js'

/**
 * Written against Aedes 1.2, lib/handlers/publish.js: for QoS 1, `enqueuePublish` writes the
 * PUBACK and only then publishes — stores the message for offline persistent sessions and
 * hands it to subscribers. A broker killed between the two had acknowledged a message that no
 * one would ever get: the publisher, told it was delivered, never sends it again.
 *
 * Here the publish happens in the step before (authorizePublish, once the ACL allowed it),
 * and the PUBACK is written only when it is done; Aedes' own publish of that packet, after
 * the PUBACK, is then swallowed (`published`, read by drop-denied-publishes.ts). A publish that
 * fails is an error: no PUBACK, the client is disconnected and sends it again. Wills and
 * QoS 0 and 2 (whose PUBREC already follows the publish) are left as they are.
 * Upstream: docs/upstream.md.
 */
export function publishBeforePuback (broker: Aedes, denied: WeakSet<PublishPacket>, published: WeakSet<PublishPacket>): void {
  const authorize = broker.authorizePublish.bind(broker) as AuthorizePublishHandler
  const publish = brokerInternals(broker).publish
  broker.authorizePublish = (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void => {
    authorize(client, packet, (error?: Error | null) => {
      if (error || packet.qos !== 1 || client === null || denied.has(packet) || isWillOf(client, packet)) return callback(error)
      publish(packet, client, (err?: Error) => {
        if (err) return callback(err)
        published.add(packet)
        callback(null)
      })
    })
  }
}

export const publishBeforePubackContract: PatchContract = {
  patch: 'publish-before-puback.ts',
  package: 'aedes',
  writtenAgainst: 'lib/handlers/publish.js (publishActions: authorizePublish, enqueuePublish; QoS 1: write PubAck, then broker.publish)',
  sources: {
    'lib/handlers/publish.js': [
      'const publishActions = [\n  authorizePublish,\n  enqueuePublish\n]',
      'write(client, new PubAck(packet), function (err) {\n        if (err) { return done(err) }\n        client.broker.publish(packet, client, done)',
      'this.broker.authorizePublish(this, packet, done)'
    ]
  },
  verify: ({ broker }) => typeof broker.authorizePublish === 'function' ? [] : ['broker.authorizePublish is not a function']
}
