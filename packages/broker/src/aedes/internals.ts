import type { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { Writable } from 'node:stream'
import type { Aedes, AedesPublishPacket, Client, PublishPacket } from 'aedes'
import type { MQEmitter } from 'mqemitter'

/**
 * The one typed view of the Aedes internals Firehose uses: fields and methods Aedes 1.2
 * (aedes.js, lib/client.js) has but its type declarations omit. Nothing else in the broker
 * casts an Aedes object; `self-check.ts` verifies at start that each of these still exists
 * with the expected shape, so an Aedes release that changes one refuses to start instead of
 * silently switching a patch off.
 */

export type Callback = () => void
export type Deliver = (packet: AedesPublishPacket, callback: Callback) => void
export type PublishFn = (packet: PublishPacket, client?: Client | null | ((err?: Error) => void), done?: (err?: Error) => void) => void

/** lib/client.js `Client` */
export interface ClientInternals {
  id: string | null
  /** 3: MQTT 3.1, 4: MQTT 3.1.1, 5: MQTT 5; null before CONNECT */
  version: number | null
  clean: boolean
  connected: boolean
  connecting: boolean
  closed: boolean
  errored: boolean
  conn: Writable
  req?: IncomingMessage
  broker: Aedes
  /** filter -> subscription (with its granted QoS), for this client */
  subscriptions: Record<string, { qos: number }>
  /** broker id -> highest brokerCounter delivered (duplicate suppression across a cluster) */
  duplicates: Record<string, number>
  /** the QoS 0 delivery function; subscriptions keep a reference to it, taken at SUBSCRIBE */
  deliver0: Deliver
  deliverQoS: Deliver
  waitForDrain: (callback: (err?: Error) => void) => void
  _onError: (err?: Error) => void
  /** the CONNECT's will while the client authenticates (undefined when it has none), then `will` */
  _will: Record<string, unknown> | null | undefined
  will: Record<string, unknown> | null | undefined
  close: (done?: Callback) => void
}

/** aedes.js `Aedes` */
export interface BrokerInternals {
  id: string
  /** the last brokerCounter given to a message (aedes-packet takes ++counter) */
  counter: number
  /** connected clients by client id */
  clients: Record<string, Client>
  /** the message bus deliveries go through (mqemitter, or mqemitter-redis in a cluster) */
  mq: MQEmitter
  publish: PublishFn
  /** the store (aedes-persistence's API): what the broker was given, or Aedes' in-memory one */
  persistence: Record<string, unknown>
}

export function clientInternals (client: Client): ClientInternals {
  return client as unknown as ClientInternals
}

export function brokerInternals (broker: Aedes): BrokerInternals {
  return broker as unknown as BrokerInternals
}

/** Aedes' `error` event (a stored will it cannot publish), which its declarations omit. */
export function asEmitter (broker: Aedes): EventEmitter {
  return broker as unknown as EventEmitter
}

export function connectedClients (broker: Aedes): Client[] {
  return Object.values(brokerInternals(broker).clients)
}

export function subscriptionCount (broker: Aedes): number {
  let n = 0
  for (const client of connectedClients(broker)) n += Object.keys(clientInternals(client).subscriptions).length
  return n
}

/** The filters `client` subscribed to. */
export function subscribedFilters (client: Client): string[] {
  return Object.keys(clientInternals(client).subscriptions)
}

/** The QoS granted to each of `client`'s subscriptions, by filter. */
export function grantedSubscriptions (client: Client): Readonly<Record<string, { qos: number }>> {
  return clientInternals(client).subscriptions
}

/** The id of the broker (cluster node) `client` is connected to. */
export function brokerIdOf (client: Client): string {
  return clientInternals(client).broker.id
}

/** The will `client` connected with, while it authenticates (Aedes moves it to `will` after). */
export function pendingWill (client: Client): Record<string, unknown> | undefined {
  return clientInternals(client)._will ?? undefined
}

/** Whether `packet` is `client`'s will being published for it (not a message it sent). */
export function isWillOf (client: Client, packet: PublishPacket): boolean {
  return clientInternals(client).will === (packet as unknown)
}

/** Back to Aedes' declared type, to hand a client to Aedes' own functions. */
export function declaredClient (client: ClientInternals): Client {
  return client as unknown as Client
}
