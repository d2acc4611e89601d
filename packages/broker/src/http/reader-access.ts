import type { IncomingHttpHeaders } from 'node:http'
import type { AccessControl, ClientAccess } from '../auth/access-control.js'

/** Who reads, and what the ACL lets them read. */
export interface Reader {
  username: string | undefined
  access: ClientAccess
  ip: string
}

export class HttpError extends Error {
  constructor (readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message)
  }
}

/**
 * The reader behind a request: anonymous, or a broker user by HTTP Basic. Wrong credentials
 * are refused (401), never downgraded to anonymous.
 */
export async function readerOf (request: { headers: IncomingHttpHeaders, socket: { remoteAddress?: string } }, access: AccessControl): Promise<Reader> {
  const ip = request.socket.remoteAddress ?? ''
  const header = request.headers.authorization
  if (header === undefined) return { username: undefined, access: access.rulesFor({ username: undefined, clientId: '' }), ip }
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)
  const decoded = m === null ? undefined : Buffer.from(m[1]!, 'base64').toString('utf8')
  const colon = decoded?.indexOf(':') ?? -1
  if (decoded === undefined || colon < 1) throw new HttpError(401, 'Authorization: expected HTTP Basic with a user name and password', { 'www-authenticate': 'Basic realm="firehose"' })
  const username = decoded.slice(0, colon)
  const result = await access.authenticate(username, Buffer.from(decoded.slice(colon + 1), 'utf8'))
  if (result !== 'ok') throw new HttpError(401, 'bad user name or password', { 'www-authenticate': 'Basic realm="firehose"' })
  return { username, access: access.rulesFor({ username, clientId: '' }), ip }
}

export type User = Reader & { username: string }

/** The user behind a request, for what only users may do (`why` begins the 401's message). */
export async function userOfRequest (request: Parameters<typeof readerOf>[0], access: AccessControl, why: string): Promise<User> {
  const reader = await readerOf(request, access)
  if (reader.username === undefined) throw new HttpError(401, `${why}: authenticate with HTTP Basic (a broker user)`, { 'www-authenticate': 'Basic realm="firehose"' })
  return reader as User
}
