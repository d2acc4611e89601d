import type { Aedes, Client, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import type { Journal } from '@firehose/journal'
import { brokerInternals } from '../aedes/internals.js'
import { topicMatches } from '../auth/topic-filter.js'
import { WILL_OWNER, type Session } from '../hooks/context.js'
import type { BrokerStats } from '../observability/stats.js'

export interface JournalPublishesDeps {
  journal: Journal
  /** MQTT filters of the topics journaled */
  topics: readonly string[]
  sessions: WeakMap<Client, Session>
  stats: BrokerStats
  logger: Logger
}

/** Whether a topic is journaled: `#` and `+` filters never match `$` topics ([MQTT-4.7.2-1]). */
export function journaledTopics (filters: readonly string[]): (topic: string) => boolean {
  return topic => filters.some(filter => topicMatches(filter, topic))
}

/**
 * Every publish the broker accepts on a journaled topic is appended to the journal before it
 * is published, and so before the publisher's PUBACK or PUBREC (which wait for the publish:
 * aedes/publish-before-puback.ts, Aedes' QoS 2 handler). Installed between the patch that drops
 * denied publishes (outside: those never get here) and the one that orders a client's publishes
 * (inside: appends take their offsets in the order the client sent them, and each publish goes
 * on once its append is written). A failed append fails the publish: nothing is acknowledged
 * that history lacks.
 */
export function journalPublishes (broker: Aedes, deps: JournalPublishesDeps): void {
  const internals = brokerInternals(broker)
  const publish = internals.publish.bind(broker)
  const journaled = journaledTopics(deps.topics)
  internals.publish = (packet, client, done) => {
    if (typeof client === 'function') {
      done = client
      client = null
    }
    if (!journaled(packet.topic)) {
      publish(packet, client, done)
      return
    }
    const user = (client === null || client === undefined ? undefined : deps.sessions.get(client)?.username) ??
      (packet as PublishPacket & { [WILL_OWNER]?: string })[WILL_OWNER]
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : Buffer.from(packet.payload.buffer, packet.payload.byteOffset, packet.payload.byteLength)
    deps.journal.append({ topic: packet.topic, payload, qos: packet.qos, retain: packet.retain, ...(user === undefined ? {} : { user }) })
      .then(() => { publish(packet, client, done) }, (err: Error) => {
        deps.stats.journalFailures++
        deps.logger.error({ event: 'journal.append-failed', topic: packet.topic, err: err.message }, 'journal append failed: the publish is refused')
        done?.(err)
      })
  }
}
