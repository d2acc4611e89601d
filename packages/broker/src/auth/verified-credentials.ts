import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/** ms a verified password is remembered */
const REMEMBER_MS = 60_000
/** users remembered at most */
const MAX_USERS = 10_000

/**
 * Passwords verified lately, one per user: not the password, but its HMAC under a key made
 * when the broker starts, with the hash it matched. Every HTTP Basic request carries the
 * password, and PBKDF2 on each (in the thread pool, waited for) was a fifth of a pull's round
 * trip. A password file reloaded with a new hash for the user, or a minute gone, means PBKDF2
 * again; a wrong password is never remembered.
 */
export class VerifiedCredentials {
  readonly #key = randomBytes(32)
  readonly #byUser = new Map<string, { hash: string, mac: Buffer, until: number }>()

  constructor (private readonly now: () => number = Date.now) {}

  /** Whether `password` is the one verified lately against `hash` for `username`. */
  matches (username: string, hash: string, password: Buffer): boolean {
    const known = this.#byUser.get(username)
    if (known === undefined || known.hash !== hash || this.now() >= known.until) return false
    return timingSafeEqual(known.mac, this.#mac(password))
  }

  remember (username: string, hash: string, password: Buffer): void {
    if (this.#byUser.size >= MAX_USERS) this.#byUser.clear()
    this.#byUser.set(username, { hash, mac: this.#mac(password), until: this.now() + REMEMBER_MS })
  }

  #mac (password: Buffer): Buffer {
    return createHmac('sha256', this.#key).update(password).digest()
  }
}
