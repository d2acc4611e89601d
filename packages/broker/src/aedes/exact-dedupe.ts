import type { AedesPublishPacket, Client } from 'aedes'
import type { PatchContract } from './contract.js'
import { clientInternals } from './internals.js'

const LAST_BROKER = Symbol('firehose.lastDeliveredBroker')
const LAST_COUNTER = Symbol('firehose.lastDeliveredCounter')

interface DedupeState { [LAST_BROKER]: string | undefined, [LAST_COUNTER]: number }

/** What Aedes' `dedupe` sees instead of its high-water marks: nothing delivered, ever. */
const NOTHING_SEEN: Record<string, number> = new Proxy(Object.create(null) as Record<string, number>, {
  get: () => undefined,
  set: () => true,
  deleteProperty: () => true
})

/**
 * Written against Aedes 1.2, lib/client.js `dedupe`: it drops any delivery whose brokerCounter
 * is not above the highest one the client has seen from that broker. The counter is taken
 * when a publish starts, but messages reach subscribers when their publish finishes, and that
 * takes longer for some than others: a retained message waits for the store, a QoS 1/2
 * message for the queues of offline persistent sessions, a will for its authorization. A
 * message overtaken by a later one was dropped for every subscriber — silently, about 5% of a
 * QoS 1 burst beside a persistent subscriber, most retained messages sent just before a plain
 * one, wills after Aedes' own $SYS notices. Upstream: docs/upstream.md.
 *
 * What dedupe is for — the same message reaching one client twice, through overlapping
 * subscriptions, or twice from Redis in a cluster — happens within one emit of that message,
 * so the copies come one right after the other: a delivery is a repeat when it is the same
 * message (broker id and counter) as the previous delivery to that client. Aedes' check is
 * neutralised (`client.duplicates` never remembers) and this one runs in authorizeForward.
 */
export function installExactDedupe (client: Client): void {
  clientInternals(client).duplicates = NOTHING_SEEN
  const state = client as Client & DedupeState
  state[LAST_BROKER] = undefined
  state[LAST_COUNTER] = 0
}

/** Whether `packet` is the message delivered to `client` just before, without recording it (isRepeatDelivery records). */
export function wasJustDelivered (client: Client, packet: AedesPublishPacket): boolean {
  const brokerId = packet.brokerId
  if (!brokerId) return false // retained messages on SUBSCRIBE, which Aedes never dedupes either
  const state = client as Client & DedupeState
  return state[LAST_COUNTER] === packet.brokerCounter && state[LAST_BROKER] === brokerId
}

/** Whether `packet` is the message delivered to `client` just before (then: drop it); if not, it is recorded as delivered. */
export function isRepeatDelivery (client: Client, packet: AedesPublishPacket): boolean {
  if (!packet.brokerId) return false
  if (wasJustDelivered(client, packet)) return true
  const state = client as Client & DedupeState
  state[LAST_BROKER] = packet.brokerId
  state[LAST_COUNTER] = packet.brokerCounter
  return false
}

export const exactDedupeContract: PatchContract = {
  patch: 'exact-dedupe.ts',
  package: 'aedes',
  writtenAgainst: 'lib/client.js (dedupe reads and writes client.duplicates[brokerId]; getToForwardPacket calls dedupe, then authorizeForward) and aedes.js (brokerBorn deletes duplicates entries)',
  sources: {
    'lib/client.js': [
      'const duplicates = client.duplicates',
      'const result = (duplicates[id] || 0) < counter',
      'const toForward = dedupe(that, _packet) &&\n        that.broker.authorizeForward(that, _packet)'
    ]
  }
}
