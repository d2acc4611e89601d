import type { Aedes } from 'aedes'
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client'
import type { EventSyncService } from '@firehose/event-sync'
import type { TidyStats } from '../aedes/tidy-level-store.js'
import type { JournalBounds } from '@firehose/journal'
import type { EventTotals, Queue, SubscriptionCounters } from '@firehose/subscriptions'
import type { ListenerConfig } from '../config/types.js'
import type { ConnectionGuard } from '../listeners/connection-guard.js'
import { registerEventSyncMetrics } from './event-sync-metrics.js'
import type { BrokerStats } from './stats.js'

export interface MetricsDeps {
  broker: Aedes
  stats: BrokerStats
  guard: ConnectionGuard
  listeners: () => readonly ListenerConfig[]
  /** the journal's figures, when the broker keeps one */
  journal?: () => JournalBounds
  /** history streams (SSE, WebSocket) open now */
  historyStreams?: () => number
  /** the subscriptions, when the broker serves them, and each one's POSTs in flight */
  subscriptions?: () => readonly Queue[]
  pushing?: (name: string) => number
  /** event_triggered, event_lost, store_ok, store_fail */
  eventTotals?: () => EventTotals
  /** the event-sync rules, when the broker runs them */
  eventSync?: EventSyncService
  /** the LevelDB session store's upkeep, when the broker keeps one */
  store?: TidyStats
}

/** Per-subscription counters: metric name, help, the counter it reads. */
const SUBSCRIPTION_COUNTERS: Array<[string, string, keyof SubscriptionCounters]> = [
  ['firehose_subscription_delivered_total', 'Events handed out by pulls, first deliveries and redeliveries', 'delivered'],
  ['firehose_subscription_redelivered_total', 'Events handed out again: their ack deadline passed, or they were nacked', 'redelivered'],
  ['firehose_subscription_acked_total', 'Deliveries acked', 'acked'],
  ['firehose_subscription_nacked_total', 'Deliveries handed back (nack)', 'nacked'],
  ['firehose_subscription_dead_lettered_total', 'Events moved to the dead letters after maxDeliveries', 'deadLettered'],
  ['firehose_subscription_expired_total', 'Events dropped unacked: past the subscription\'s retention or the journal\'s', 'expired'],
  ['firehose_subscription_push_ok_total', 'Push: POSTs answered 2xx', 'pushOk'],
  ['firehose_subscription_push_failed_total', 'Push: POSTs that failed (retried, 410, other 4xx, no answer in time)', 'pushFailed']
]

/**
 * Prometheus metrics, read from the plain counters at scrape time: nothing here runs on
 * the message path. One registry per broker, no global state.
 */
export function createMetrics ({ broker, stats, guard, listeners, journal, historyStreams, subscriptions, pushing, eventTotals, eventSync, store }: MetricsDeps): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'firehose_' })

  registry.registerMetric(new Gauge({
    name: 'firehose_connections',
    help: 'Open connections per listener',
    labelNames: ['listener'],
    registers: [],
    collect () {
      for (const l of listeners()) this.set({ listener: l.name }, guard.connectionsOn(l.name))
    }
  }))
  registry.registerMetric(new Gauge({
    name: 'firehose_clients_connected',
    help: 'MQTT clients connected (after CONNACK)',
    registers: [],
    collect () { this.set(broker.connectedClients) }
  }))

  const counters: Array<[string, string, () => number]> = [
    ['firehose_messages_received_total', 'PUBLISH packets received from clients', () => stats.messagesReceived],
    ['firehose_messages_sent_total', 'PUBLISH packets forwarded to subscribers', () => stats.messagesSent],
    ['firehose_publish_denied_total', 'Publishes and wills dropped because the ACL denies them', () => stats.publishDeniedByAcl],
    ['firehose_subscribe_denied_total', 'Subscriptions refused by the ACL (SUBACK 0x80)', () => stats.subscribeDenied],
    ['firehose_bytes_received_total', 'Bytes read from client sockets', () => guard.bytes().received],
    ['firehose_bytes_sent_total', 'Bytes written to client sockets', () => guard.bytes().sent],
    ['firehose_connections_refused_total', 'Connections refused by limits.maxConnections or limits.maxConnectionsPerIp', () => stats.connectionsRefused],
    ['firehose_connects_refused_total', 'CONNECTs refused: bad credentials or client identifier', () => stats.connectsRefused],
    ['firehose_protocol_violations_total', 'Connections closed for a packet that breaks MQTT 3.1.1: a string not UTF-8 or holding U+0000, packet id 0, no topic filter, a password without a user name', () => stats.protocolViolations],
    ['firehose_queued_messages_dropped_total', 'Queued messages dropped (oldest first) from offline sessions over limits.maxQueuedMessages', () => stats.queuedDropped],
    ['firehose_sessions_expired_total', 'Offline persistent sessions removed after limits.sessionExpiry (anonymous) or limits.userSessionExpiry', () => stats.sessionsExpired],
    ['firehose_packets_refused_total', 'Connections closed for a packet over limits.maxPacketSize or a malformed length', () => stats.packetsRefused],
    ['firehose_websocket_refused_total', 'WebSocket upgrades refused for a malformed handshake, and MQTT-over-WebSocket connections closed for a frame that breaks RFC 6455 or is not binary', () => stats.webSocketRefused],
    ['firehose_slow_clients_disconnected_total', 'Subscribers disconnected because their queue passed limits.maxQueuedBytes', () => stats.slowClientsDisconnected],
    ['firehose_deliveries_dropped_total', 'Deliveries dropped to stalled subscribers', () => stats.deliveriesDropped],
    ['firehose_journal_append_failures_total', 'Publishes refused because their journal append failed', () => stats.journalFailures],
    ['firehose_history_slow_readers_disconnected_total', 'History readers (SSE, WebSocket) disconnected because their unsent bytes passed limits.maxQueuedBytes', () => stats.slowReadersDisconnected],
    ['firehose_history_requests_refused_total', 'History requests refused: bad parameters, credentials, ACL, too many streams', () => stats.historyRefused]
  ]
  if (journal !== undefined) {
    counters.push(['firehose_journal_appends_total', 'Entries appended to the journal since start', () => journal().appends])
    const gauges: Array<[string, string, () => number]> = [
      ['firehose_journal_first_offset', 'Oldest offset the journal still holds', () => journal().first],
      ['firehose_journal_last_offset', 'Newest offset given', () => journal().last],
      ['firehose_journal_bytes', 'Bytes of the entries held', () => journal().bytes],
      ['firehose_history_streams', 'History streams (SSE, WebSocket) open', () => historyStreams?.() ?? 0]
    ]
    for (const [name, help, read] of gauges) {
      registry.registerMetric(new Gauge({ name, help, registers: [], collect () { this.set(read()) } }))
    }
  }
  if (subscriptions !== undefined) {
    registerSubscriptionMetrics(registry, subscriptions, journal, pushing ?? (() => 0))
    // the seven totals of an object-store pubsub, over every subscription
    const totals = eventTotals ?? (() => ({ eventTriggered: 0, eventLost: 0, storeOk: 0, storeFailed: 0 }))
    const sum = (key: 'pushOk' | 'pushFailed'): number => subscriptions().reduce((n, queue) => n + queue.counters[key], 0)
    counters.push(
      ['firehose_subscriptions_events_triggered_total', 'Events that reached at least one subscription (event_triggered)', () => totals().eventTriggered],
      ['firehose_subscriptions_events_lost_total', 'Events for at least one subscription that could not be journaled (event_lost)', () => totals().eventLost],
      ['firehose_subscriptions_store_ok_total', 'Events kept for a subscription, once per subscription (store_ok)', () => totals().storeOk],
      ['firehose_subscriptions_store_failed_total', 'Events a subscription would have had, not journaled (store_fail)', () => totals().storeFailed],
      ['firehose_subscriptions_push_ok_total', 'Push POSTs answered 2xx, all subscriptions (push_ok)', () => sum('pushOk')],
      ['firehose_subscriptions_push_failed_total', 'Push POSTs that failed, all subscriptions (push_fail)', () => sum('pushFailed')]
    )
    registry.registerMetric(new Gauge({ name: 'firehose_subscriptions_push_pending', help: 'Push POSTs in flight, all subscriptions (push_pending)', registers: [], collect () { this.set(subscriptions().reduce((n, queue) => n + (pushing?.(queue.name) ?? 0), 0)) } }))
  }
  if (eventSync !== undefined) registerEventSyncMetrics(registry, eventSync)
  if (store !== undefined) {
    counters.push(
      ['firehose_store_compactions_total', 'Compactions of the session store (persistence.dir) after many deleted keys', () => store.compactions],
      ['firehose_store_range_scans_skipped_total', 'Session-store range scans not made: the client had nothing stored there (a clean client, a socket closed before CONNECT)', () => store.rangesSkipped]
    )
  }
  for (const [name, help, read] of counters) {
    registry.registerMetric(new Counter({
      name,
      help,
      registers: [],
      collect () {
        this.reset()
        this.inc(read())
      }
    }))
  }
  return registry
}

/** Counters and gauges per subscription (label `subscription`); a deleted one disappears. */
function registerSubscriptionMetrics (registry: Registry, subscriptions: () => readonly Queue[], journal: (() => JournalBounds) | undefined, pushing: (name: string) => number): void {
  const series: Array<[typeof Counter | typeof Gauge, string, string, (queue: Queue) => number]> = [
    ...SUBSCRIPTION_COUNTERS.map(([name, help, key]): [typeof Counter, string, string, (queue: Queue) => number] => [Counter, name, help, queue => queue.counters[key]]),
    [Gauge, 'firehose_subscription_outstanding', 'Events pulled and not acked yet', queue => queue.outstanding],
    [Gauge, 'firehose_subscription_dead_letters', 'Events in the dead letters', queue => queue.deadLetterCount],
    [Gauge, 'firehose_subscription_push_pending', 'Push: POSTs in flight, not yet answered', queue => pushing(queue.name)],
    [Gauge, 'firehose_subscription_unread_entries', 'Journal entries the subscription has not looked at yet (of any topic)', queue => Math.max(0, (journal?.().last ?? 0) - queue.state.next + 1)]
  ]
  for (const [Metric, name, help, read] of series) {
    registry.registerMetric(new Metric({
      name,
      help,
      labelNames: ['subscription'],
      registers: [],
      // counters and gauges alike: emptied, then each subscription's value added
      collect () {
        this.reset()
        for (const queue of subscriptions()) this.inc({ subscription: queue.name }, read(queue))
      }
    }))
  }
  registry.registerMetric(new Gauge({ name: 'firehose_subscriptions', help: 'Subscriptions on the broker', registers: [], collect () { this.set(subscriptions().length) } }))
}
