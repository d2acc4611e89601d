import type { Aedes, Client, PublishPacket } from 'aedes'

type PublishFn = (packet: PublishPacket, client?: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => void

/**
 * The one place Firehose reaches past Aedes' hooks. Aedes has no way for authorizePublish
 * to drop a packet without disconnecting its client (MQTT 3.1.1 has no negative PUBACK),
 * but Mosquitto's behaviour — acknowledge, drop, count, stay connected — is what existing
 * read-only tools rely on. Every client publish and will passes through `broker.publish`
 * with the packet object authorizePublish saw, so packets it marked are swallowed here
 * (before retained storage and fan-out) and the protocol flow (PUBACK/PUBREC) goes on.
 */
export function dropDeniedPublishes (broker: Aedes, denied: WeakSet<PublishPacket>): void {
  const publish = broker.publish.bind(broker) as PublishFn
  const patched: PublishFn = (packet, client, done) => {
    if (denied.has(packet)) {
      denied.delete(packet)
      const callback = typeof client === 'function' ? client : done
      if (callback !== undefined) setImmediate(callback)
      return
    }
    publish(packet, client, done)
  }
  ;(broker as unknown as { publish: PublishFn }).publish = patched
}
