import type { Client, PublishPacket } from 'aedes'
import type { Logger } from 'pino'
import type { AccessControl, ClientAccess } from '../auth/access-control.js'
import type { Limits } from '../config/types.js'
import type { StalledSubscriberGuard } from '../listeners/stalled-subscriber.js'
import type { BrokerStats } from '../observability/stats.js'

/** What the broker knows of a connected client beyond Aedes' own fields. */
export interface Session {
  username: string | undefined
  access: ClientAccess
}

/**
 * Field added to a will at CONNECT (authenticate) naming the user who connected with it, so
 * whoever publishes it later — another node, the next run — can apply that user's ACL.
 */
export const WILL_OWNER = 'firehoseOwner'

/** Shared by every hook: passed in, never a module-level singleton. */
export interface HookContext {
  access: AccessControl
  sessions: WeakMap<Client, Session>
  /** CONNECTs to answer with CONNACK 2 (identifier rejected), marked by preConnect */
  rejectedIds: WeakSet<Client>
  /** publishes (and wills) the ACL denied: acknowledged to the client, then dropped */
  denied: WeakSet<PublishPacket>
  stats: BrokerStats
  /** disconnects subscribers whose unsent bytes pass limits.maxQueuedBytes */
  stalled: StalledSubscriberGuard
  limits: Limits
  logger: Logger
}

/** The client's address, for logs: its socket's (under WebSocket too: the socket is the stream). */
export function remoteAddress (client: Client): string | undefined {
  return (client.conn as { remoteAddress?: string }).remoteAddress
}
