import type { Aedes } from 'aedes'
import type { Logger } from 'pino'
import { connectedClients } from './aedes/internals.js'
import type { AccessControl } from './auth/access-control.js'
import type { HookContext } from './hooks/context.js'
import type { Listener } from './listeners/listener.js'

export interface ReloadDeps {
  broker: Aedes
  access: AccessControl
  ctx: HookContext
  listeners: readonly Listener[]
  logger: Logger
  /** re-reads the configuration's event-sync rules (when the broker runs them from a file); false when refused */
  reloadEventSync?: () => Promise<boolean>
}

/**
 * SIGHUP: re-reads users, ACL, TLS certificates and the event-sync rules of the configuration
 * file (nothing else in it) without dropping a connection. Connected
 * clients get the new rules at once; a client whose user was removed is disconnected. A file
 * with errors is refused and the old rules stay. Resolves false when something was refused.
 */
export function createReload ({ broker, access, ctx, listeners, logger, reloadEventSync }: ReloadDeps): () => Promise<boolean> {
  return async () => {
    const problems = await access.load()
    if (problems.length > 0) {
      logger.error({ event: 'broker.reload-refused', problems }, 'reload refused: users and ACL unchanged')
      return false
    }
    for (const client of connectedClients(broker)) {
      const session = ctx.sessions.get(client)
      if (session === undefined) continue
      if (session.username !== undefined && access.hasPasswordFile && !access.hasUser(session.username)) {
        logger.info({ clientId: client.id, username: session.username }, 'user removed from the password file: disconnecting')
        client.close()
        continue
      }
      const username = access.hasPasswordFile ? session.username : undefined
      ctx.sessions.set(client, { username, access: access.rulesFor({ username, clientId: client.id }) })
    }
    let ok = true
    for (const l of listeners) {
      await l.reloadTls().catch((err: unknown) => {
        ok = false
        logger.error({ err: (err as Error).message, listener: l.config.name }, 'TLS certificate reload failed: keeping the previous certificate')
      })
    }
    if (reloadEventSync !== undefined && !await reloadEventSync()) ok = false
    logger.info({ event: 'broker.reloaded', users: access.userCount }, 'reloaded users, ACL and certificates')
    return ok
  }
}
