import type { Aedes, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { EventSync, EventSyncStore } from '@firehose/event-sync'
import type { Journal } from '@firehose/journal'
import { topicMatches } from '@firehose/runtime'
import type { EventSyncConfig, JournalConfig } from '../config/types.js'
import { WILL_OWNER } from '../hooks/context.js'

/** Room left in a PUBLISH for its fixed header, topic and packet id. */
const PUBLISH_OVERHEAD = 1024

/**
 * The broker's event sync: its rules publish through the broker itself (QoS 1: journaled before
 * they go out, as a bridge's events are), so their combined events reach MQTT, SSE,
 * subscriptions and webhooks alike, and the journal records what was published.
 */
export async function openEventSync (config: EventSyncConfig, journalConfig: JournalConfig, journal: Journal, broker: Aedes, maxPacketSize: number, source: string, logger: Logger): Promise<EventSync> {
  const store = await EventSyncStore.open(config.dir, { key: 'eventSync (its directory)', source })
  const publish = async (topic: string, payload: Buffer, user?: string): Promise<void> => {
    const packet = { cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false, ...(user === undefined ? {} : { [WILL_OWNER]: user }) } as unknown as PublishPacket
    await new Promise<void>((resolve, reject) => { broker.publish(packet, err => { if (err) reject(err); else resolve() }) })
  }
  const sync = await EventSync.open(config.rules, {
    journal,
    store,
    publish,
    maxOutputBytes: maxPacketSize - PUBLISH_OVERHEAD,
    journaled: topic => journalConfig.topics.some(filter => topicMatches(filter, topic)),
    log: (level, event, fields, message) => { logger[level]({ event, ...fields }, message) }
  }).catch(async (err: unknown) => { await store.close(); throw err })
  logger.info({ event: 'eventsync.opened', rules: sync.all().length }, 'event sync open')
  return sync
}
