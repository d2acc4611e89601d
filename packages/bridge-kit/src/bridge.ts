import type { Logger } from 'pino'
import { startOpsServer } from '@firehose/runtime'
import type { CommonConfig } from './config.js'
import { createBridgeMetrics } from './metrics.js'
import type { OutboxEvent } from './outbox/event-queue.js'
import { Outbox, type AcceptResult } from './outbox/outbox.js'
import { MqttPublisher } from './publisher.js'
import { StatusReporter } from './status.js'

/** What a source (an SSH stream, a mailbox, an HTTP receiver) gets to hand its events over. */
export interface EventSink {
  /** Durably accepts an event; resolves once it is on disk, waiting while the outbox is full. */
  accept: (event: OutboxEvent, dedupeKey?: string) => Promise<AcceptResult>
  hasSeen: (dedupeKey: string) => Promise<boolean>
  /** Resolves once every event accepted so far has been acknowledged by the broker. */
  flushed: () => Promise<void>
  /** Input that cannot be used: logged and counted, never fatal. */
  reject: (reason: string, detail?: Record<string, unknown>) => void
  /** The source's connection state, shown on the status topic. */
  sourceState: (state: 'connected' | 'reconnecting', extra?: Record<string, unknown>) => void
  annotate: (fields: Record<string, unknown>) => void
  getMeta: (name: string) => Promise<string | undefined>
  setMeta: (name: string, value: string) => Promise<void>
  readonly logger: Logger
}

/** A bridge's source: started with the sink, stopped on shutdown (stop reading, keep nothing half-done). */
export interface Source {
  start: (sink: EventSink) => void
  stop: () => Promise<void>
}

export interface RunningBridge {
  /** Stops the source, flushes the outbox for up to `drainMs`, says "stopped", disconnects. */
  stop: (drainMs?: number) => Promise<void>
}

export async function startBridge (config: CommonConfig, source: Source, logger: Logger): Promise<RunningBridge> {
  let delivered = (): void => {}
  const outbox = await Outbox.open({ ...config.outbox, logger, source: config.source, onAcknowledged: () => delivered() })
  const metrics = createBridgeMetrics(config.name, () => outbox.depth)
  const status = new StatusReporter(Date.now, () => outbox.depth, outbox.lastAcceptedAt)
  delivered = () => status.eventDelivered()
  const publisher = new MqttPublisher(config, { outbox, logger, metrics, status })
  const server = config.metrics === undefined
    ? undefined
    : await startOpsServer({ ...config.metrics, name: 'metrics' }, {
      registry: metrics.registry,
      logger,
      // the bridge is up while its process is: the body says how its source and broker fare
      health: () => ({ ok: true, ...status.toJSON(), mqttConnected: publisher.connected })
    })

  const sink: EventSink = {
    logger,
    accept: async (event, key) => {
      metrics.received.inc()
      const result = await outbox.accept(event, key)
      if (result === 'duplicate') metrics.duplicates.inc()
      else metrics.accepted.inc()
      // the time the outbox recorded, which a restarted bridge reads back
      status.eventSeen(result === 'queued' ? outbox.lastAcceptedAt : undefined)
      return result
    },
    hasSeen: async key => await outbox.hasSeen(key),
    flushed: async () => await outbox.flushed(),
    reject: (reason, detail) => {
      metrics.failed.inc({ reason })
      logger.warn({ event: 'bridge.input-rejected', reason, ...detail }, 'input rejected: %s', reason)
    },
    sourceState: (state, extra) => {
      metrics.sourceConnected.set(state === 'connected' ? 1 : 0)
      status.setState(state, extra)
    },
    annotate: fields => status.annotate(fields),
    getMeta: async name => await outbox.meta.get(name),
    setMeta: async (name, value) => await outbox.meta.set(name, value)
  }

  publisher.start()
  source.start(sink)
  logger.info({ event: 'bridge.started', bridge: config.name, outboxDepth: outbox.depth }, 'bridge started')

  let stopped: Promise<void> | undefined
  return {
    stop: (drainMs = 10000) => (stopped ??= (async () => {
      await source.stop()
      await publisher.stop(drainMs)
      await server?.close()
      await outbox.close()
      logger.info({ event: 'bridge.stopped', outboxDepth: outbox.depth }, 'bridge stopped')
    })())
  }
}
