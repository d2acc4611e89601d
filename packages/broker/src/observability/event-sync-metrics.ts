import { Counter, Gauge, type Registry } from 'prom-client'
import type { EventSyncService, RuleState } from '@firehose/event-sync'

type Series = Array<{ labels: Record<string, string>, value: number }>

/**
 * Event sync's figures: per rule and endpoint, the events taken and held; per rule and trigger
 * type, the combined events decided; what left the period unused; and the output side's troubles.
 * On a cluster, the node that runs the rules reports them.
 */
export function registerEventSyncMetrics (registry: Registry, eventSync: EventSyncService): void {
  const perEndpoint = (read: (state: RuleState, i: number) => number) => (): Series =>
    eventSync.running().flatMap(state => state.rule.endpoints.map((endpoint, i) => ({ labels: { rule: state.rule.name, endpoint: endpoint.eventKey }, value: read(state, i) })))
  const perRule = (read: (state: RuleState) => number) => (): Series =>
    eventSync.running().map(state => ({ labels: { rule: state.rule.name }, value: read(state) }))
  const series: Array<[typeof Counter | typeof Gauge, string, string, string[], () => Series]> = [
    [Counter, 'firehose_eventsync_events_total', 'Events an event-sync rule took in, per endpoint', ['rule', 'endpoint'], perEndpoint((s, i) => s.counters.events[i]!)],
    [Gauge, 'firehose_eventsync_held_events', 'Events within the observation period and not exported, per endpoint', ['rule', 'endpoint'], perEndpoint((s, i) => s.held[i]!.size)],
    [Counter, 'firehose_eventsync_triggers_total', 'Combined events decided, per trigger type (window: automatic; none: asked for)', ['rule', 'type'],
      () => eventSync.running().flatMap(s => (['window', 'none'] as const).map(type => ({ labels: { rule: s.rule.name, type }, value: s.counters.triggers[type] })))],
    [Counter, 'firehose_eventsync_expired_total', 'Events that left the observation period without being used', ['rule'], perRule(s => s.counters.expired)],
    [Gauge, 'firehose_eventsync_pending', 'Combined events decided and not yet in the journal', ['rule'], perRule(s => s.pending.size)],
    [Counter, 'firehose_eventsync_truncated_total', 'Combined events that left events out to fit the broker\'s packet size', [], () => [{ labels: {}, value: eventSync.totals.truncated }]],
    [Counter, 'firehose_eventsync_publish_failures_total', 'Publishes of a combined event that failed (each is tried again)', [], () => [{ labels: {}, value: eventSync.totals.publishFailures }]],
    [Counter, 'firehose_eventsync_read_failures_total', 'Journal reads by event sync that failed (it goes on from where it stopped)', [], () => [{ labels: {}, value: eventSync.totals.readFailures }]],
    [Counter, 'firehose_eventsync_republishes_avoided_total', 'Replayed decisions found published by the check before publishing (the fold should have seen them: each is a bug caught)', [], () => [{ labels: {}, value: eventSync.totals.republishesAvoided }]],
    [Counter, 'firehose_eventsync_journal_gaps_total', 'Offsets missing between entries event sync read (a failed journal write leaves one)', [], () => [{ labels: {}, value: eventSync.totals.gaps }]]
  ]
  for (const [Metric, name, help, labelNames, read] of series) {
    registry.registerMetric(new Metric({
      name,
      help,
      labelNames,
      registers: [],
      collect () {
        this.reset()
        for (const { labels, value } of read()) this.inc(labels, value)
      }
    }))
  }
}
