import type { Client, Subscription } from 'aedes'
import type { HookContext } from './context.js'

/** A subscription the ACL denies gets SUBACK 0x80 [MQTT-3.9.3-2]; the others in the packet stand. */
export function createAuthorizeSubscribe (ctx: HookContext) {
  return function authorizeSubscribe (client: Client, sub: Subscription, callback: (error: Error | null, sub?: Subscription | null) => void): void {
    const session = ctx.sessions.get(client)
    if (session === undefined || !session.access.canSubscribe(sub.topic)) {
      ctx.stats.subscribeDenied++
      ctx.logger.debug({ clientId: client.id, username: session?.username, filter: sub.topic }, 'subscription denied by ACL')
      return callback(null, null)
    }
    callback(null, sub)
  }
}
