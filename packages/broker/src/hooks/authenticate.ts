import type { AuthenticateError, Client } from 'aedes'
import { pendingWill } from '../aedes/internals.js'
import { remoteAddress, WILL_OWNER, type HookContext } from './context.js'

type Done = (error: AuthenticateError | null, success: boolean | null) => void

function refusal (returnCode: 2 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError
}

/**
 * Anonymous clients are always let in (read-only by policy). A client that names a user
 * must give that user's password from the password file. Without a password file there
 * are no users: a username is ignored and the client is anonymous, as the name proves nothing.
 * Never logs a password.
 */
export function createAuthenticate (ctx: HookContext) {
  return function authenticate (client: Client, username: string | undefined, password: Buffer | undefined, done: Done): void {
    if (ctx.rejectedIds.has(client)) {
      ctx.stats.connectsRefused++
      return done(refusal(2, 'identifier rejected'), false)
    }
    if (username === undefined || !ctx.access.hasPasswordFile) {
      ctx.sessions.set(client, { username: undefined, access: ctx.access.rulesFor({ username: undefined, clientId: client.id }) })
      return done(null, true)
    }
    ctx.access.authenticate(username, password).then(result => {
      if (result !== 'ok') {
        ctx.stats.connectsRefused++
        ctx.logger.warn({ event: 'client.refused', clientId: client.id, username, ip: remoteAddress(client), reason: result }, 'connect refused: bad user name or password')
        return done(refusal(4, 'bad user name or password'), false)
      }
      ctx.sessions.set(client, { username, access: ctx.access.rulesFor({ username, clientId: client.id }) })
      markWillOwner(client, username)
      ctx.logger.info({ clientId: client.id, username }, 'user authenticated')
      done(null, true)
    }, (err: unknown) => {
      ctx.logger.error({ err, clientId: client.id }, 'authentication failed')
      done(refusal(5, 'not authorized'), false)
    })
  }
}

/**
 * The will is stored with the session (in Redis, for a cluster), and may be published by
 * another node when this one dies, or by the next run of this broker: with the owner's user
 * name on it, that publisher can apply the owner's ACL. The field is not part of the
 * message that goes out (Aedes builds a new packet from the will's MQTT fields).
 */
function markWillOwner (client: Client, username: string): void {
  const will = pendingWill(client)
  if (will !== undefined) will[WILL_OWNER] = username
}
