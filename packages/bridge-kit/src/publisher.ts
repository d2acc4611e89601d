import { readFileSync } from 'node:fs'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { Backoff, deadline, sleep } from './backoff.js'
import type { CommonConfig } from './config.js'
import type { BridgeMetrics } from './metrics.js'
import type { Outbox } from './outbox.js'
import type { StatusReporter } from './status.js'

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
    this.loop = this.run()
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
    this.deps.outbox.emit('added') // wake the drain loop
    await client?.endAsync().catch(() => {})
    await this.loop
  }

  private async run (): Promise<void> {
    const { urls } = this.config.mqtt
    const backoff = new Backoff(this.config.backoff.initial * 1000, this.config.backoff.max * 1000)
    for (let attempt = 0; !this.stopping; attempt++) {
      const url = urls[attempt % urls.length]!
      let client: MqttClient
      try {
        client = await this.connectOnce(url)
      } catch (err) {
        const delay = backoff.next()
        this.deps.logger.warn({ url, err: (err as Error).message, retryInMs: delay }, 'cannot connect to the broker')
        await sleep(delay, this.stopSignal.signal)
        continue
      }
      backoff.reset()
      this.client = client
      this.deps.metrics.mqttConnected.set(1)
      this.deps.logger.info({ url, outboxDepth: this.deps.outbox.depth }, 'connected to the broker')
      this.statusDirty = true
      this.publishStatus()
      await this.drain(client)
      this.deps.metrics.mqttConnected.set(0)
      if (this.stopping) return
      client.end(true)
      const delay = backoff.next()
      this.deps.logger.warn({ url, outboxDepth: this.deps.outbox.depth, retryInMs: delay }, 'lost the broker connection: events wait in the outbox')
      await sleep(delay, this.stopSignal.signal)
    }
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
    const { outbox, metrics, logger } = this.deps
    let isClosed = false
    const closed = new Promise<'closed'>(resolve => client.once('close', () => {
      isClosed = true
      outbox.emit('added') // wake a waiting loop
      resolve('closed')
    }))
    const race = async <T>(...contenders: Array<Promise<T>>): Promise<T | 'timeout'> => {
      const timer = deadline(this.config.mqtt.publishTimeout * 1000)
      try {
        return await Promise.race([...contenders, timer.expired])
      } finally {
        timer.cancel()
      }
    }
    while (!isClosed && !this.stopping) {
      // mqtt.js re-sends an event whose handshake a crash or a disconnect interrupted: wait for it
      if (outbox.inflightSeq() !== undefined) {
        const outcome = await race<string>(new Promise(resolve => outbox.once('removed', () => resolve('done'))), closed)
        if (outcome === 'timeout') return this.abandon(client, 'no PUBCOMP in time for the re-sent event')
        continue
      }
      const entry = await outbox.head()
      if (entry === undefined) {
        await new Promise(resolve => outbox.once('added', resolve))
        continue
      }
      outbox.mqttStore.nextSeq = entry.seq
      const acked = client.publishAsync(entry.topic, entry.payload, { qos: 2, retain: entry.retain === true })
      const outcome = await race<'acked' | 'closed' | Error>(acked.then(() => 'acked' as const, (err: Error) => err), closed)
      if (outcome === 'acked') {
        metrics.published.inc()
        metrics.latency.observe((Date.now() - entry.acceptedAt) / 1000)
        continue
      }
      if (outcome === 'timeout') return this.abandon(client, 'no PUBCOMP in time')
      if (outcome instanceof Error) {
        metrics.failed.inc({ reason: 'publish' })
        return this.abandon(client, `publish failed: ${outcome.message}`)
      }
      return
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
    }, 200)
  }

  private statusTimer: NodeJS.Timeout | undefined
}
