import { readFileSync } from 'node:fs'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { deadline, sleep } from './backoff.js'
import type { CommonConfig } from './config.js'
import type { BridgeMetrics } from './metrics.js'
import type { Outbox } from './outbox/outbox.js'
import { keepReconnecting } from './reconnect.js'
import type { StatusReporter } from './status.js'

/** The status topic is published at most this often, with the latest state: a burst of events is one update. */
export const STATUS_COALESCE_MS = 200

/**
 * One persistent, authenticated MQTT connection, to the first broker URL that answers
 * (then the next, with capped backoff, when it drops). It drains the outbox in order, one
 * event in flight, so order holds across reconnects.
 *
 * Events go at QoS 2 in a persistent session, with mqtt.js's in-flight state on the outbox's
 * disk: an event leaves the outbox in the same write that records the broker's PUBCOMP. QoS 1
 * cannot do this — a bridge killed between the broker's PUBACK and deleting the event would
 * send it again on restart — and "nothing lost, nothing twice" is the point of a bridge.
 * Subscribers still get each event at the QoS they asked for.
 */
export class MqttPublisher {
  private client: MqttClient | undefined
  private stopping = false
  private readonly stopSignal = new AbortController()
  private loop: Promise<void> | undefined
  private statusDirty = false
  private statusTimer: NodeJS.Timeout | undefined
  private readonly statusTopic: string
  private readonly ca: Buffer | undefined

  constructor (
    private readonly config: CommonConfig,
    private readonly deps: { outbox: Outbox, logger: Logger, metrics: BridgeMetrics, status: StatusReporter }
  ) {
    this.statusTopic = `firehose/bridges/${config.name}`
    this.ca = config.mqtt.ca === undefined ? undefined : readFileSync(config.mqtt.ca)
    deps.status.on('change', () => this.publishStatus())
  }

  get connected (): boolean { return this.client?.connected === true }

  start (): void {
    const { urls } = this.config.mqtt
    const { logger, metrics, outbox } = this.deps
    let url = urls[0]!
    this.loop = keepReconnecting({
      backoff: { initialMs: this.config.backoff.initial * 1000, maxMs: this.config.backoff.max * 1000 },
      signal: this.stopSignal.signal,
      attempt: async (attempt, connected) => {
        url = urls[attempt % urls.length]!
        const client = await this.connectOnce(url)
        connected()
        this.client = client
        metrics.mqttConnected.set(1)
        logger.info({ event: 'bridge.broker-connected', url, outboxDepth: outbox.depth }, 'connected to the broker')
        this.publishStatus()
        try {
          await this.drain(client)
        } finally {
          metrics.mqttConnected.set(0)
          if (!this.stopping) client.end(true)
        }
      },
      retrying: ({ failure, wasConnected, retryInMs }) => {
        if (wasConnected) logger.warn({ event: 'bridge.broker-lost', url, outboxDepth: outbox.depth, retryInMs }, 'lost the broker connection: events wait in the outbox')
        else logger.warn({ event: 'bridge.broker-unreachable', url, err: failure?.message, retryInMs }, 'cannot connect to the broker')
      }
    })
  }

  /** Waits up to `drainMs` for the outbox to empty, publishes "stopped", disconnects cleanly. */
  async stop (drainMs: number): Promise<void> {
    const until = Date.now() + drainMs
    while (this.deps.outbox.depth > 0 && this.connected && Date.now() < until) await sleep(50)
    this.stopping = true
    const client = this.client
    if (client?.connected === true) {
      this.deps.status.setState('stopped')
      await client.publishAsync(this.statusTopic, JSON.stringify(this.deps.status), { qos: 0, retain: true }).catch(() => {})
    }
    this.stopSignal.abort()
    await client?.endAsync().catch(() => {})
    await this.loop
  }

  private async connectOnce (url: string): Promise<MqttClient> {
    const { mqtt } = this.config
    const options: IClientOptions = {
      clientId: mqtt.clientId ?? `firehose-bridge-${this.config.name}`,
      // the broker keeps our QoS 2 packet ids across reconnects and its own restarts
      clean: false,
      outgoingStore: this.deps.outbox.mqttStore,
      keepalive: mqtt.keepalive,
      reconnectPeriod: 0, // reconnection is ours: backoff, jitter, next URL
      connectTimeout: 15000,
      ...(mqtt.username === undefined ? {} : { username: mqtt.username }),
      ...(mqtt.password === undefined ? {} : { password: mqtt.password }),
      ...(this.ca === undefined ? {} : { ca: this.ca }),
      will: {
        topic: this.statusTopic,
        payload: Buffer.from(JSON.stringify({ state: 'offline', since: null, lastEventAt: null, outboxDepth: null })),
        qos: 1,
        retain: true
      }
    }
    return await new Promise<MqttClient>((resolve, reject) => {
      const client = connect(url, options)
      const fail = (err: Error): void => {
        client.removeAllListeners('connect')
        client.end(true)
        reject(err)
      }
      client.once('connect', () => {
        client.removeListener('error', fail)
        client.on('error', err => this.deps.logger.warn({ err: err.message }, 'broker connection error'))
        resolve(client)
      })
      client.once('error', fail)
      client.once('close', () => fail(new Error('connection closed before CONNACK')))
    })
  }

  /** Publishes outbox events one by one until the connection drops or the bridge stops. */
  private async drain (client: MqttClient): Promise<void> {
    const { outbox, metrics } = this.deps
    const connection = new AbortController()
    client.once('close', () => connection.abort())
    if (!client.connected) connection.abort() // it closed before the drain began
    const signal = AbortSignal.any([connection.signal, this.stopSignal.signal])
    // resolves 'timeout' when the broker does not acknowledge in time, or 'gone' when the connection or the bridge is
    const settle = async <T>(work: Promise<T>): Promise<T | 'timeout' | 'gone'> => {
      const timer = deadline(this.config.mqtt.publishTimeout * 1000)
      let onAbort = (): void => {}
      const gone = new Promise<'gone'>(resolve => { onAbort = () => resolve('gone') })
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, { once: true })
      try {
        return await Promise.race([work, timer.expired, gone])
      } finally {
        timer.cancel()
        // one listener per publish would pile up on the connection's signal otherwise
        signal.removeEventListener('abort', onAbort)
      }
    }
    while (!signal.aborted) {
      // mqtt.js re-sends an event whose handshake a crash or a disconnect interrupted: wait for it
      if (outbox.resending) {
        if (await settle(outbox.acknowledgement(signal)) === 'timeout') return this.abandon(client, 'no PUBCOMP in time for the re-sent event')
        continue
      }
      const entry = await outbox.next(signal)
      if (entry === undefined) return
      const acked = client.publishAsync(entry.topic, entry.payload, { qos: 2, retain: entry.retain === true })
      const outcome = await settle(acked.then(() => 'acked' as const, (err: Error) => err))
      if (outcome === 'acked') {
        metrics.published.inc()
        metrics.latency.observe((Date.now() - entry.acceptedAt) / 1000)
      } else if (outcome === 'timeout') {
        return this.abandon(client, 'no PUBCOMP in time')
      } else if (outcome instanceof Error) {
        metrics.failed.inc({ reason: 'publish' })
        return this.abandon(client, `publish failed: ${outcome.message}`)
      } else {
        return
      }
    }
  }

  /** Drops the connection; the event stays on disk and is re-sent after reconnecting. */
  private abandon (client: MqttClient, reason: string): void {
    this.deps.logger.warn({ reason }, 'reconnecting to the broker')
    client.end(true)
  }

  /** The status is a state, not an event: the latest is published when connected, bursts coalesced. */
  private publishStatus (): void {
    this.statusDirty = true
    if (this.statusTimer !== undefined) return
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined
      const client = this.client
      if (!this.statusDirty || client?.connected !== true || this.stopping) return
      this.statusDirty = false
      // QoS 0: QoS 1 and 2 packets go through the outbox's store, which is for events
      client.publish(this.statusTopic, JSON.stringify(this.deps.status), { qos: 0, retain: true }, err => {
        if (err) this.statusDirty = true
      })
    }, STATUS_COALESCE_MS)
  }
}
