import type { AedesPublishPacket, Client } from 'aedes'
import { isRepeatDelivery } from '../aedes/exact-dedupe.js'
import { grantedQos } from '../aedes/granted-qos.js'
import { brokerIdOf, subscribedFilters } from '../aedes/internals.js'
import type { HookContext } from './context.js'
import { topicMatches } from '@firehose/runtime'

const SYS_PREFIX = '$SYS/'
const SYS_BROKER_PREFIX = '$SYS/broker/'

/**
 * Runs once per message per subscriber: the fan-out hot path, so it allocates nothing.
 * - Aedes' internal `$SYS/<broker id>/...` traffic (client ids coming and going) is not
 *   for subscribers; only our Mosquitto-compatible `$SYS/broker/...` is, and only this node's.
 * - A client whose unsent bytes pass limits.maxQueuedBytes is stalled (a frozen browser
 *   tab, a suspended laptop): it is disconnected and counted (listeners/stalled-subscriber.ts).
 * - ACL read rules, skipped for clients that may read everything.
 * - The same message twice in a row to one client (overlapping subscriptions) goes once
 *   (aedes/exact-dedupe.ts), at the highest QoS its matching subscriptions were granted,
 *   never above it [MQTT-3.8.4-6] — Aedes lowers it for exact filters only.
 */
export function createAuthorizeForward (ctx: HookContext) {
  return function authorizeForward (client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    if (isRepeatDelivery(client, packet)) return null
    const topic = packet.topic
    if (topic.charCodeAt(0) === 36 /* $ */) {
      if (topic.startsWith(SYS_PREFIX) && !topic.startsWith(SYS_BROKER_PREFIX)) return null
      // in a cluster, another node's $SYS/broker/... is its own business (retained ones come with no brokerId)
      if (topic.startsWith(SYS_BROKER_PREFIX) && packet.brokerId != null && packet.brokerId !== brokerIdOf(client)) return null
      // Aedes sends retained $ messages to a `#` subscription too; [MQTT-4.7.2-1] says no
      if (!subscribedFilters(client).some(f => topicMatches(f, topic))) return null
    }
    if (ctx.stalled.check(client.conn, client.id)) return null
    const session = ctx.sessions.get(client)
    if (session === undefined) return null
    if (!(session.access.readsEverything && topic.charCodeAt(0) !== 36) && !session.access.canReceive(topic)) return null
    // the packet is this delivery's own copy (Aedes makes one per subscription)
    if (packet.qos > 0) packet.qos = Math.min(packet.qos, grantedQos(client, topic)) as AedesPublishPacket['qos']
    ctx.stats.messagesSent++
    return packet
  }
}
