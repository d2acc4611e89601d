import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

/** Prometheus metrics of one bridge, in a registry of its own. */
export function createBridgeMetrics (name: string, outboxDepth: () => number) {
  const registry = new Registry()
  registry.setDefaultLabels({ bridge: name })
  collectDefaultMetrics({ register: registry, prefix: 'firehose_bridge_' })
  const registers = [registry]
  return {
    registry,
    received: new Counter({ name: 'firehose_bridge_events_received_total', help: 'Events read from the source', registers }),
    accepted: new Counter({ name: 'firehose_bridge_events_accepted_total', help: 'Events written to the outbox', registers }),
    duplicates: new Counter({ name: 'firehose_bridge_events_duplicate_total', help: 'Events already published (replays), skipped', registers }),
    published: new Counter({ name: 'firehose_bridge_events_published_total', help: 'Events acknowledged by the broker (PUBCOMP)', registers }),
    failed: new Counter({ name: 'firehose_bridge_events_failed_total', help: 'Source input that could not be used, and failed publishes, by reason', labelNames: ['reason'], registers }),
    latency: new Histogram({ name: 'firehose_bridge_publish_delay_seconds', help: 'From accepting an event to its PUBCOMP', buckets: [0.005, 0.02, 0.1, 0.5, 2, 10, 60, 600], registers }),
    mqttConnected: new Gauge({ name: 'firehose_bridge_mqtt_connected', help: '1 while connected to the broker', registers }),
    sourceConnected: new Gauge({ name: 'firehose_bridge_source_connected', help: '1 while connected to the source', registers }),
    outboxDepth: new Gauge({ name: 'firehose_bridge_outbox_depth', help: 'Events waiting for the broker', registers, collect () { this.set(outboxDepth()) } })
  }
}

export type BridgeMetrics = ReturnType<typeof createBridgeMetrics>
