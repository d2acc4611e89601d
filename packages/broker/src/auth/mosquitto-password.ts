import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

const pbkdf2Async = promisify(pbkdf2)

/** mosquitto_passwd 2.x writes 101 iterations, a 12-byte salt and a 64-byte key. */
const DEFAULT_ITERATIONS = 101
const MAX_ITERATIONS = 10_000_000

export interface PasswordFileProblem { line: number, message: string }
export interface ParsedPasswordFile { users: Map<string, string>, problems: PasswordFileProblem[] }

type Hash =
  | { kind: 'sha512', salt: Buffer, digest: Buffer }
  | { kind: 'pbkdf2-sha512', iterations: number, salt: Buffer, digest: Buffer }

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

function decode (field: string | undefined): Buffer | undefined {
  if (field === undefined || field === '' || !BASE64.test(field)) return undefined
  return Buffer.from(field, 'base64')
}

/** Mosquitto's hash strings: `$6$salt$digest` and `$7$iterations$salt$digest`, base64 fields. */
function parseHash (hash: string): Hash | string {
  const fields = hash.split('$')
  if (fields[0] !== '') return 'not a Mosquitto hash (expected $6$ or $7$)'
  if (fields[1] === '6' && fields.length === 4) {
    const salt = decode(fields[2])
    const digest = decode(fields[3])
    if (salt === undefined || digest === undefined) return '$6$ hash with a malformed salt or digest'
    return { kind: 'sha512', salt, digest }
  }
  if (fields[1] === '7' && fields.length === 5) {
    const iterations = Number(fields[2])
    if (!/^\d+$/.test(fields[2] ?? '') || iterations < 1 || iterations > MAX_ITERATIONS) return `$7$ hash with iterations "${fields[2]}" (1 to ${MAX_ITERATIONS})`
    const salt = decode(fields[3])
    const digest = decode(fields[4])
    if (salt === undefined || digest === undefined) return '$7$ hash with a malformed salt or digest'
    return { kind: 'pbkdf2-sha512', iterations, salt, digest }
  }
  return 'unknown hash type (expected $6$ or $7$; plain-text passwords are not accepted)'
}

export function validateUsername (user: string): string | null {
  if (user === '') return 'the user name is empty'
  if (user.includes(':')) return 'a user name cannot contain ":"'
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  if (/[\u0000-\u001f\u007f]/.test(user)) return 'a user name cannot contain control characters'
  if (Buffer.byteLength(user) > 65535) return 'the user name is too long'
  return null
}

/**
 * Mosquitto's password_file: `user:hash` per line, split at the first ':'; blank lines and
 * `#` comments ignored. A bad line is reported (never with its hash) and skipped.
 */
export function parsePasswordFile (text: string): ParsedPasswordFile {
  const users = new Map<string, string>()
  const problems: PasswordFileProblem[] = []
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim()
    const n = index + 1
    if (line === '' || line.startsWith('#')) return
    const colon = line.indexOf(':')
    if (colon < 0) {
      problems.push({ line: n, message: 'expected user:hash' })
      return
    }
    const user = line.slice(0, colon)
    const hash = line.slice(colon + 1)
    const badUser = validateUsername(user)
    if (badUser !== null) {
      problems.push({ line: n, message: badUser })
      return
    }
    const parsed = parseHash(hash)
    if (typeof parsed === 'string') {
      problems.push({ line: n, message: `user "${user}": ${parsed}` })
      return
    }
    if (users.has(user)) problems.push({ line: n, message: `user "${user}" appears again; the last line wins` })
    users.set(user, hash)
  })
  return { users, problems }
}

/** True when `password` matches the Mosquitto hash; false (never a throw) for a malformed hash. */
export async function verifyPassword (hash: string, password: Buffer | string): Promise<boolean> {
  const parsed = parseHash(hash)
  if (typeof parsed === 'string') return false
  const secret = typeof password === 'string' ? Buffer.from(password) : password
  const computed = parsed.kind === 'sha512'
    ? createHash('sha512').update(secret).update(parsed.salt).digest()
    : await pbkdf2Async(secret, parsed.salt, parsed.iterations, parsed.digest.length, 'sha512')
  return computed.length === parsed.digest.length && timingSafeEqual(computed, parsed.digest)
}

/** A `$7$` hash, as mosquitto_passwd 2.x writes it, which Mosquitto and Firehose both accept. */
export async function hashPassword (password: string, iterations = DEFAULT_ITERATIONS): Promise<string> {
  const salt = randomBytes(12)
  const digest = await pbkdf2Async(Buffer.from(password), salt, iterations, 64, 'sha512')
  return `$7$${iterations}$${salt.toString('base64')}$${digest.toString('base64')}`
}

/** Replaces the user's line, or appends one; comments, other users and their order stay. */
export function upsertPasswordLine (text: string, user: string, hash: string): string {
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n')
  let found = false
  const updated = lines.map(line => {
    const trimmed = line.trim()
    if (!trimmed.startsWith('#') && trimmed.slice(0, trimmed.indexOf(':')) === user && trimmed.includes(':')) {
      if (found) return undefined // a duplicate: keep one line per user
      found = true
      return `${user}:${hash}`
    }
    return line
  }).filter((line): line is string => line !== undefined)
  if (!found) updated.push(`${user}:${hash}`)
  return updated.join('\n') + '\n'
}

/** Removes the user's lines. */
export function removePasswordLine (text: string, user: string): string {
  const lines = text.replace(/\n$/, '').split('\n')
  const kept = lines.filter(line => {
    const trimmed = line.trim()
    return trimmed.startsWith('#') || !trimmed.includes(':') || trimmed.slice(0, trimmed.indexOf(':')) !== user
  })
  return kept.length === 0 ? '' : kept.join('\n') + '\n'
}
