/** What happened to one subscription's events since the broker started. */
export interface SubscriptionCounters {
  /** events handed out by pulls, first deliveries and redeliveries */
  delivered: number
  /** of those, redeliveries (deadline passed, or nacked) */
  redelivered: number
  acked: number
  nacked: number
  /** moved to the dead letters after maxDeliveries */
  deadLettered: number
  /** dropped unacked: older than the subscription's retention, or no longer in the journal */
  expired: number
  /** push: POSTs answered 2xx */
  pushOk: number
  /** push: POSTs that failed (to be retried, 410, other 4xx, no answer) */
  pushFailed: number
}

export const newCounters = (): SubscriptionCounters => ({ delivered: 0, redelivered: 0, acked: 0, nacked: 0, deadLettered: 0, expired: 0, pushOk: 0, pushFailed: 0 })

/**
 * Totals over every subscription, as an object-store pubsub counts them: events that reached
 * at least one subscription (`eventTriggered`), events that would have and could not be stored
 * (`eventLost`: the journal append failed), and (event, subscription) pairs stored or not.
 * `pushOk`, `pushFailed` and `pushPending` are summed from the subscriptions when read.
 */
export interface EventTotals {
  eventTriggered: number
  eventLost: number
  storeOk: number
  storeFailed: number
}
