import type { Aedes, Client, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import { isJsonText, type InFlight, type Journal } from '@firehose/journal'
import { topicMatches } from '@firehose/runtime'
import { WILL_OWNER, type Session } from '../hooks/context.js'
import type { BrokerStats } from '../observability/stats.js'
import type { PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'

export interface JournalBeforePublishDeps {
  journal: Journal
  /** MQTT filters of the topics journaled */
  topics: readonly string[]
  sessions: WeakMap<Client, Session>
  stats: BrokerStats
  logger: Logger
  /** an event that could not be journaled, by topic (the subscriptions count what it would have reached) */
  onAppendFailed?: (topic: string) => void
}

type ClientPersistence = (client: Client, packet?: PublishPacket) => Promise<unknown>

/** Whether a topic is journaled: `#` and `+` filters never match `$` topics ([MQTT-4.7.2-1]). */
export function journaledTopics (filters: readonly string[]): (topic: string) => boolean {
  return topic => filters.some(filter => topicMatches(filter, topic))
}

/**
 * Written against Aedes 1.2: aedes.js `publish (packet, client, done)` (client publishes and
 * wills go through it), lib/handlers/pubrel.js (PUBREL deletes the incoming QoS 2 record with
 * `persistence.incomingDelPacket`) and lib/handlers/connect.js (a clean session's incoming
 * records go with `persistence.cleanIncoming`).
 *
 * Every QoS 1 and 2 publish the broker accepts on a journaled topic is appended to the journal
 * before it is published, and so before the publisher's PUBACK or PUBREC, which wait for the
 * publish (publish-before-puback.ts, Aedes' QoS 2 handler). A QoS 0 publish, with nothing to
 * acknowledge, takes its offset at once and is published while it is written. Installed between the patch that drops
 * denied publishes (outside: those never get here) and the one that orders a client's
 * publishes (inside: appends take their offsets in the order the client sent them, and each
 * publish goes on once its append is written). A failed append fails a QoS 1/2 publish: nothing is
 * acknowledged that history lacks.
 *
 * A client's QoS 2 message is journaled with its packet id, held until PUBREL (or a clean
 * session): its retransmission after the broker died between the append and the PUBREC —
 * Aedes publishes it again, having no record of it — is not journaled a second time.
 */
export function journalBeforePublish (broker: Aedes, deps: JournalBeforePublishDeps): void {
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
    const from = client ?? undefined
    const user = (from === undefined ? undefined : deps.sessions.get(from)?.username) ??
      (packet as PublishPacket & { [WILL_OWNER]?: string })[WILL_OWNER]
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : Buffer.from(packet.payload.buffer, packet.payload.byteOffset, packet.payload.byteLength)
    const inFlight: InFlight | undefined = from !== undefined && from.id !== null && packet.qos === 2 && typeof packet.messageId === 'number'
      ? { client: from.id, packetId: packet.messageId }
      : undefined
    // JSON checked once here, so that no reader and no replay parses it again
    const appended = deps.journal.append({ topic: packet.topic, payload, qos: packet.qos, retain: packet.retain, json: isJsonText(payload), ...(user === undefined ? {} : { user }) }, inFlight)
    if (packet.qos === 0) {
      // nothing to acknowledge: published at once, journaled meanwhile (its offset is already taken, in order)
      appended.catch((err: Error) => { failed(err, 'journal append failed for a QoS 0 message: it is missing from history', packet.topic) })
      publish(packet, client, done)
      return
    }
    appended.then(() => { publish(packet, client, done) }, (err: Error) => {
      failed(err, 'journal append failed: the publish is refused', packet.topic)
      done?.(err)
    })
  }
  const failed = (err: Error, message: string, topic: string): void => {
    deps.stats.journalFailures++
    deps.onAppendFailed?.(topic)
    deps.logger.error({ event: 'journal.append-failed', err: err.message }, message)
  }

  const persistence = internals.persistence as Record<string, unknown>
  const del = (persistence.incomingDelPacket as ClientPersistence).bind(persistence)
  persistence.incomingDelPacket = async (client: Client, packet: PublishPacket): Promise<void> => {
    await del(client, packet)
    if (client.id !== null && typeof packet.messageId === 'number') await deps.journal.release(client.id, packet.messageId)
  }
  const clean = typeof persistence.cleanIncoming === 'function' ? (persistence.cleanIncoming as ClientPersistence).bind(persistence) : undefined
  persistence.cleanIncoming = async (client: Client): Promise<void> => {
    await clean?.(client)
    if (client.id !== null) await deps.journal.release(client.id)
  }
}

export const journalBeforePublishContract: PatchContract = {
  patch: 'journal-before-publish.ts',
  package: 'aedes',
  writtenAgainst: 'aedes.js (publish (packet, client, done)), lib/handlers/pubrel.js (incomingDelPacket on PUBREL) and lib/handlers/connect.js (cleanIncoming for a clean session)',
  sources: {
    'lib/handlers/pubrel.js': ['persistence.incomingDelPacket(client, arg.packet)'],
    'lib/handlers/connect.js': ["typeof persistence.cleanIncoming === 'function' && persistence.cleanIncoming(client)"],
    'lib/handlers/publish.js': ['client.broker.publish(packet, client']
  },
  verify: ({ broker }) => typeof brokerInternals(broker).persistence.incomingDelPacket === 'function' ? [] : ['broker.persistence has no incomingDelPacket']
}
