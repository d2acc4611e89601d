import type { Aedes, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { ClusterEventSync, EventSync, EventSyncStore, RedisEventSyncStore, type EventSyncService, type LogLevel } from '@firehose/event-sync'
import type { Journal } from '@firehose/journal'
import { topicMatches } from '@firehose/runtime'
import type { ClusterBackends } from '../cluster/redis-backends.js'
import type { EventSyncConfig, JournalConfig } from '../config/types.js'
import { WILL_OWNER } from '../hooks/context.js'

/** Room left in a PUBLISH for its fixed header, topic and packet id. */
const PUBLISH_OVERHEAD = 1024

/**
 * The broker's event sync: its rules publish through the broker itself (QoS 1: journaled before
 * they go out, as a bridge's events are), so their combined events reach MQTT, SSE,
 * subscriptions and webhooks alike, and the journal records what was published. On a cluster
 * node, the rules run on one node at a time and keep their state in Redis (ClusterEventSync).
 */
export async function openEventSync (config: EventSyncConfig, journalConfig: JournalConfig, journal: Journal, broker: Aedes, maxPacketSize: number, source: string, logger: Logger, cluster: ClusterBackends | undefined): Promise<EventSyncService> {
  const publish = async (topic: string, payload: Buffer, user?: string): Promise<void> => {
    const packet = { cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, ...(user === undefined ? {} : { [WILL_OWNER]: user }) } as unknown as PublishPacket
    await new Promise<void>((resolve, reject) => { broker.publish(packet, err => { if (err) reject(err); else resolve() }) })
  }
  const deps = {
    journal,
    publish,
    maxOutputBytes: maxPacketSize - PUBLISH_OVERHEAD,
    journaled: (topic: string) => journalConfig.topics.some(filter => topicMatches(filter, topic)),
    log: (level: LogLevel, event: string, fields: Record<string, unknown>, message: string) => { logger[level]({ event, ...fields }, message) }
  }
  if (cluster !== undefined || config.dir === undefined) {
    if (cluster === undefined) throw new Error('eventSync: no directory and no cluster to keep its state in')
    const sync = await ClusterEventSync.open(config.rules, { ...deps, store: new RedisEventSyncStore(cluster.journal.db), node: cluster.id })
    logger.info({ event: 'eventsync.opened', rules: sync.rules().length, store: 'redis' }, 'event sync open (on a cluster: one node runs the rules)')
    return sync
  }
  const store = await EventSyncStore.open(config.dir, { key: 'eventSync (its directory)', source })
  const sync = await EventSync.open(config.rules, { ...deps, store }).catch(async (err: unknown) => { await store.close(); throw err })
  logger.info({ event: 'eventsync.opened', rules: sync.rules().length }, 'event sync open')
  return sync
}
