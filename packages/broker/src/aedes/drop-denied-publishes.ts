import type { Aedes, PublishPacket } from 'aedes'
import type { PatchContract } from './contract.js'
import { brokerInternals, type PublishFn } from './internals.js'

/**
 * Aedes has no way for authorizePublish to drop a packet without disconnecting its client
 * (MQTT 3.1.1 has no negative PUBACK), but Mosquitto's behaviour — acknowledge, drop, count,
 * stay connected — is what existing read-only tools rely on. Every client publish and will
 * passes through `broker.publish` with the packet object authorizePublish saw, so packets it
 * marked are swallowed here (before retained storage and fan-out) and the protocol flow
 * (PUBACK/PUBREC) goes on.
 *
 * Written against Aedes 1.2: lib/handlers/publish.js (enqueuePublish calls
 * `client.broker.publish(packet, client, done)` after authorizePublish) and lib/client.js
 * (a will is published with `that.broker.publish(will, that, done)`). Upstream proposal:
 * docs/upstream.md.
 */
export function dropDeniedPublishes (broker: Aedes, denied: WeakSet<PublishPacket>, published: WeakSet<PublishPacket> = new WeakSet()): void {
  const internals = brokerInternals(broker)
  const publish = internals.publish.bind(broker)
  internals.publish = (packet, client, done) => {
    // denied, or already published before its PUBACK (publish-before-puback.ts)
    if (denied.has(packet) || published.has(packet)) {
      denied.delete(packet)
      published.delete(packet)
      const callback = typeof client === 'function' ? client : done
      if (callback !== undefined) setImmediate(callback)
      return
    }
    publish(packet, client, done)
  }
}

export const dropDeniedPublishesContract: PatchContract = {
  patch: 'drop-denied-publishes.ts',
  package: 'aedes',
  writtenAgainst: 'aedes.js (Aedes.prototype.publish (packet, client, done)), lib/handlers/publish.js and lib/client.js (client publishes and wills go through broker.publish)',
  sources: {
    'lib/handlers/publish.js': ['function authorizePublish (packet, done)', 'client.broker.publish(packet, client'],
    'lib/client.js': ['that.broker.publish(will, that, done)']
  },
  verify ({ broker }) {
    const publish: PublishFn = brokerInternals(broker).publish
    return typeof publish === 'function' && publish.length === 3 && !Object.hasOwn(broker, 'publish')
      ? []
      : ['broker.publish is not the prototype method publish (packet, client, done)']
  }
}
