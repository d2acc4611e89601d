import type { Client, PublishPacket } from 'aedes'
import { isWillOf } from '../aedes/internals.js'
import { WILL_OWNER, type HookContext, type Session } from './context.js'

/**
 * A publish the ACL denies is acknowledged as usual and then dropped, and the client
 * stays connected, as Mosquitto does for MQTT 3.1.1: read-only tools such as mqttwarn
 * publish status messages and must keep working. Aedes would disconnect on an error
 * here, so the packet is marked instead and `dropDeniedPublishes` swallows it.
 * Wills pass here too when a client dies: a denied will is dropped the same way.
 * Never calls back with an error: for a will, Aedes would turn that into an unhandled
 * rejection that ends the process (docs/upstream.md, entry 7).
 */
export function createAuthorizePublish (ctx: HookContext) {
  return function authorizePublish (client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void): void {
    // A will whose client is gone — its node died, or a previous run of this broker — has no
    // client here: it is judged by the ACL of the user who connected with it. (When a client
    // with the same id is connected here, Aedes passes that one instead, and its user judges
    // the will: docs/upstream.md, entry 7.)
    const session = client === null ? orphanWillSession(ctx, packet) : ctx.sessions.get(client)
    // a will is published by the broker on the client's behalf: not a message received
    if (client !== null && !isWillOf(client, packet)) ctx.stats.messagesReceived++
    const allowed = session !== undefined && !packet.topic.startsWith('$') && session.access.canPublish(packet.topic)
    if (!allowed) {
      ctx.denied.add(packet)
      ctx.stats.publishDeniedByAcl++
      ctx.logger.debug({ clientId: client?.id ?? null, username: session?.username, topic: packet.topic }, 'publish denied by ACL: dropped')
    }
    callback(null)
  }
}

function orphanWillSession (ctx: HookContext, packet: PublishPacket): Session | undefined {
  const { [WILL_OWNER]: owner, clientId } = packet as PublishPacket & { [WILL_OWNER]?: unknown, clientId?: unknown }
  if (typeof owner !== 'string' || typeof clientId !== 'string' || !ctx.access.hasUser(owner)) return undefined
  return { username: owner, access: ctx.access.rulesFor({ username: owner, clientId }) }
}
