import { readFile } from 'node:fs/promises'
import { cannotRead } from '@firehose/runtime'
import { AclPolicy, parseAclFile, type Identity } from './mosquitto-acl.js'
import { parsePasswordFile, verifyPassword } from './mosquitto-password.js'
import { VerifiedCredentials } from './verified-credentials.js'

/** What one connected client may do; computed at CONNECT and again on reload. */
export interface ClientAccess {
  canPublish: (topic: string) => boolean
  canSubscribe: (filter: string) => boolean
  canReceive: (topic: string) => boolean
  /** every topic not starting with '$' may be received: skip the per-message check */
  readonly readsEverything: boolean
}

/** Without an ACL file: anonymous clients read everything and publish nothing. */
const ANONYMOUS_DEFAULT: ClientAccess = Object.freeze({
  canPublish: () => false,
  canSubscribe: () => true,
  canReceive: () => true,
  readsEverything: true
})

/** Without an ACL file, as Mosquitto: an authenticated user may publish anywhere outside `$`. */
const USER_DEFAULT: ClientAccess = Object.freeze({
  canPublish: (topic: string) => !topic.startsWith('$'),
  canSubscribe: () => true,
  canReceive: () => true,
  readsEverything: true
})

export type AuthResult = 'ok' | 'unknown-user' | 'bad-password' | 'no-password'

interface Loaded { users: Map<string, string> | undefined, policy: AclPolicy | undefined }

/**
 * Users (Mosquitto password_file) and rules (Mosquitto acl_file). Both are read together
 * and swapped in at once, so a reload with a broken file changes nothing.
 */
export class AccessControl {
  private current: Loaded = { users: undefined, policy: undefined }

  /** passwords verified lately (PBKDF2 once a minute per user, not on every HTTP request) */
  private readonly verified: VerifiedCredentials

  constructor (private readonly files: { passwordFile?: string, aclFile?: string }, now: () => number = Date.now) {
    this.verified = new VerifiedCredentials(now)
  }

  /** Reads both files. Returns the problems found; only when there are none is the new state applied. */
  async load (): Promise<string[]> {
    const problems: string[] = []
    const next: Loaded = { users: undefined, policy: undefined }
    const { passwordFile, aclFile } = this.files
    if (passwordFile !== undefined) {
      const text = await readText(passwordFile, 'passwordFile', problems)
      if (text !== undefined) {
        const parsed = parsePasswordFile(text)
        for (const p of parsed.problems) problems.push(`passwordFile ${passwordFile} line ${p.line}: ${p.message}`)
        next.users = parsed.users
      }
    }
    if (aclFile !== undefined) {
      const text = await readText(aclFile, 'aclFile', problems)
      if (text !== undefined) {
        const parsed = parseAclFile(text)
        for (const p of parsed.problems) problems.push(`aclFile ${aclFile} line ${p.line}: ${p.message}`)
        next.policy = new AclPolicy(parsed.acl)
      }
    }
    if (problems.length === 0) this.current = next
    return problems
  }

  get hasPasswordFile (): boolean { return this.current.users !== undefined }

  hasUser (username: string): boolean { return this.current.users?.has(username) ?? false }

  get userCount (): number { return this.current.users?.size ?? 0 }

  async authenticate (username: string, password: Buffer | undefined): Promise<AuthResult> {
    const hash = this.current.users?.get(username)
    if (hash === undefined) return 'unknown-user'
    if (password === undefined) return 'no-password'
    if (this.verified.matches(username, hash, password)) return 'ok'
    if (!await verifyPassword(hash, password)) return 'bad-password'
    this.verified.remember(username, hash, password)
    return 'ok'
  }

  rulesFor (identity: Identity): ClientAccess {
    const { policy } = this.current
    if (policy !== undefined) return policy.rulesFor(identity)
    return identity.username === undefined ? ANONYMOUS_DEFAULT : USER_DEFAULT
  }
}

async function readText (path: string, key: string, problems: string[]): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    problems.push(cannotRead(key, path, err))
    return undefined
  }
}
