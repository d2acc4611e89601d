import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import type { JournalBounds } from '@firehose/journal'
import { subscriptionCount } from '../aedes/internals.js'
import type { ConnectionGuard } from '../listeners/connection-guard.js'
import { LoadAverage } from './load-average.js'
import type { BrokerStats } from './stats.js'

/** What $SYS/broker/subscriptions/pull/... shows: sums over every pull subscription. */
export interface SubscriptionTotals {
  count: number
  delivered: number
  acked: number
  outstanding: number
  deadLetters: number
}

export interface SysDeps {
  broker: Aedes
  stats: BrokerStats
  guard: ConnectionGuard
  logger: Logger
  version: string
  intervalSeconds: number
  /** milliseconds; injected so tests and the clock agree */
  now: () => number
  /** persistent sessions known to be offline */
  disconnectedClients: () => number
  /** the journal's figures, when the broker keeps one: $SYS/broker/journal/... */
  journal?: () => JournalBounds
  /** totals over every pull subscription, when the broker serves them: $SYS/broker/subscriptions/pull/... (no names: $SYS is public; subscriptions/count stays Mosquitto's MQTT count) */
  subscriptions?: () => SubscriptionTotals
}

type Counter = 'messages/received' | 'messages/sent' | 'publish/received' | 'publish/sent' | 'publish/dropped' | 'bytes/received' | 'bytes/sent'
const WINDOWS = [['1min', 60], ['5min', 300], ['15min', 900]] as const

/** Every this many intervals every value is published again, changed or not. */
export const SYS_REFRESH_INTERVALS = 6

/**
 * Publishes `$SYS/broker/...` under Mosquitto's names, retained, every `sysInterval`
 * seconds, so existing consumers (a statsd forwarder, dashboards) keep working. Values that
 * changed are published at each interval, and all of them every SYS_REFRESH_INTERVALS: a
 * subscriber can be handed a stale retained value (Aedes sends retained messages from a
 * snapshot of the store, which may reach it after a newer live value of the same topic), and
 * a value that no longer changes would otherwise stay stale for it.
 */
export class SysTopics {
  private timer: NodeJS.Timeout | undefined
  private readonly startedAt: number
  private lastUpdate: number
  private readonly published = new Map<string, string>()
  private readonly loads = new Map<string, LoadAverage>()

  constructor (private readonly deps: SysDeps) {
    this.startedAt = deps.now()
    this.lastUpdate = this.startedAt
  }

  start (): void {
    if (this.deps.intervalSeconds <= 0) return
    this.publishAll()
    this.timer = setInterval(() => this.publishAll(), this.deps.intervalSeconds * 1000)
    this.timer.unref()
  }

  stop (): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
  }

  /** The values as they stand now, by topic suffix. */
  snapshot (): Map<string, string> {
    const { broker, stats, guard } = this.deps
    const now = this.deps.now()
    const elapsed = (now - this.lastUpdate) / 1000
    this.lastUpdate = now
    const bytes = guard.bytes()
    const memory = process.memoryUsage()
    const connected = broker.connectedClients
    stats.clientsMaximum = Math.max(stats.clientsMaximum, connected)
    const disconnected = this.deps.disconnectedClients()
    const dropped = stats.publishDeniedByAcl + stats.deliveriesDropped
    const counters: Record<Counter, number> = {
      'messages/received': stats.messagesReceived,
      'messages/sent': stats.messagesSent,
      'publish/received': stats.messagesReceived,
      'publish/sent': stats.messagesSent,
      'publish/dropped': dropped,
      'bytes/received': bytes.received,
      'bytes/sent': bytes.sent
    }
    const values = new Map<string, string>([
      ['version', `firehose version ${this.deps.version}`],
      ['uptime', `${Math.floor((now - this.startedAt) / 1000)} seconds`],
      ['clients/connected', String(connected)],
      ['clients/active', String(connected)],
      ['clients/disconnected', String(disconnected)],
      ['clients/inactive', String(disconnected)],
      ['clients/total', String(connected + disconnected)],
      ['clients/maximum', String(stats.clientsMaximum)],
      ['clients/expired', String(stats.sessionsExpired)],
      ['subscriptions/count', String(subscriptionCount(broker))],
      ['heap/current', String(memory.heapUsed)],
      ['heap/maximum', String(this.heapMaximum(memory.heapUsed))],
      ['messages/received', String(stats.messagesReceived)],
      ['messages/sent', String(stats.messagesSent)],
      ['publish/messages/received', String(stats.messagesReceived)],
      ['publish/messages/sent', String(stats.messagesSent)],
      ['publish/messages/dropped', String(dropped)],
      ['store/messages/dropped', String(stats.queuedDropped)],
      ['bytes/received', String(bytes.received)],
      ['bytes/sent', String(bytes.sent)]
    ])
    const journal = this.deps.journal?.()
    if (journal !== undefined) {
      values.set('journal/offset/first', String(journal.first))
      values.set('journal/offset/last', String(journal.last))
      values.set('journal/bytes', String(journal.bytes))
      values.set('journal/appends', String(journal.appends))
    }
    const subscriptions = this.deps.subscriptions?.()
    if (subscriptions !== undefined) {
      values.set('subscriptions/pull/count', String(subscriptions.count))
      values.set('subscriptions/pull/delivered', String(subscriptions.delivered))
      values.set('subscriptions/pull/acked', String(subscriptions.acked))
      values.set('subscriptions/pull/outstanding', String(subscriptions.outstanding))
      values.set('subscriptions/pull/dead-letters', String(subscriptions.deadLetters))
    }
    for (const [name, total] of Object.entries(counters) as [Counter, number][]) {
      for (const [label, seconds] of WINDOWS) {
        const key = `load/${name}/${label}`
        let load = this.loads.get(key)
        if (load === undefined) this.loads.set(key, load = new LoadAverage(seconds))
        values.set(key, load.update(total, elapsed).toFixed(2))
      }
    }
    return values
  }

  private heapMax = 0
  private heapMaximum (current: number): number {
    this.heapMax = Math.max(this.heapMax, current)
    return this.heapMax
  }

  private intervals = 0
  private publishAll (): void {
    if (this.intervals++ % SYS_REFRESH_INTERVALS === 0) this.published.clear()
    for (const [suffix, value] of this.snapshot()) {
      if (this.published.get(suffix) === value) continue
      this.published.set(suffix, value)
      this.deps.broker.publish({
        cmd: 'publish',
        topic: `$SYS/broker/${suffix}`,
        payload: Buffer.from(value),
        qos: 0,
        retain: true,
        dup: false
      }, err => {
        if (err) this.deps.logger.warn({ err, topic: suffix }, 'cannot publish $SYS topic')
      })
    }
  }
}
