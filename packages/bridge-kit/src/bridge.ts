import type { Logger } from 'pino'
import type { CommonConfig } from './config.js'
import { createBridgeMetrics, serveMetrics, type BridgeMetrics } from './metrics.js'
import { Outbox, type AcceptResult, type OutboxEvent } from './outbox.js'
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
  readonly outbox: Outbox
  readonly metrics: BridgeMetrics
  readonly metricsPort: number | undefined
  /** Stops the source, flushes the outbox for up to `drainMs`, says "stopped", disconnects. */
  stop: (drainMs?: number) => Promise<void>
}

export async function startBridge (config: CommonConfig, source: Source, logger: Logger): Promise<RunningBridge> {
  const outbox = await Outbox.open({ dir: config.outbox.dir, maxEvents: config.outbox.maxEvents, dedupeDays: config.outbox.dedupeDays, logger })
  const metrics = createBridgeMetrics(config.name, () => outbox.depth)
  const status = new StatusReporter(Date.now, () => outbox.depth)
  const publisher = new MqttPublisher(config, { outbox, logger, metrics, status })
  const server = config.metrics === undefined
    ? undefined
    : await serveMetrics(config.metrics, metrics.registry, () => ({ ...status.toJSON(), mqttConnected: publisher.connected }), logger)

  const sink: EventSink = {
    logger,
    accept: async (event, key) => {
      metrics.received.inc()
      status.eventSeen()
      const result = await outbox.accept(event, key)
      if (result === 'duplicate') metrics.duplicates.inc()
      else metrics.accepted.inc()
      return result
    },
    hasSeen: async key => await outbox.hasSeen(key),
    flushed: async () => await outbox.flushed(),
    reject: (reason, detail) => {
      metrics.failed.inc({ reason })
      logger.warn({ reason, ...detail }, 'input rejected: %s', reason)
    },
    sourceState: (state, extra) => {
      metrics.sourceConnected.set(state === 'connected' ? 1 : 0)
      status.setState(state, extra)
    },
    annotate: fields => status.annotate(fields),
    getMeta: async name => await outbox.getMeta(name),
    setMeta: async (name, value) => await outbox.setMeta(name, value)
  }

  publisher.start()
  source.start(sink)
  logger.info({ bridge: config.name, outboxDepth: outbox.depth }, 'bridge started')

  let stopped: Promise<void> | undefined
  return {
    outbox,
    metrics,
    metricsPort: server?.port,
    stop: (drainMs = 10000) => (stopped ??= (async () => {
      await source.stop()
      await publisher.stop(drainMs)
      await server?.close()
      await outbox.close()
      logger.info({ outboxDepth: outbox.depth }, 'bridge stopped')
    })())
  }
}

/** Runs a bridge until SIGTERM or SIGINT; returns the exit code. */
export async function runUntilSignalled (bridge: RunningBridge, logger: Logger): Promise<number> {
  return await new Promise<number>(resolve => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'shutting down: flushing the outbox')
      bridge.stop().then(() => resolve(0), (err: unknown) => {
        logger.error({ err }, 'error during shutdown')
        resolve(1)
      })
    }
    process.once('SIGTERM', onSignal)
    process.once('SIGINT', onSignal)
  })
}
