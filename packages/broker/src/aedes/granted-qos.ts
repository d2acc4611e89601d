import type { Client } from 'aedes'
import { topicMatches } from '@firehose/runtime'
import { grantedSubscriptions } from './internals.js'

/** The highest QoS granted to a subscription of `client` matching `topic` (0 when none is above 0). */
export function grantedQos (client: Client, topic: string): number {
  let granted = 0
  const subscriptions = grantedSubscriptions(client)
  for (const filter in subscriptions) {
    const qos = subscriptions[filter]!.qos
    if (qos > granted && topicMatches(filter, topic)) granted = qos
  }
  return granted
}
