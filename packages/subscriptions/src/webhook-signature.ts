import { createHmac, createSecretKey, type KeyObject } from 'node:crypto'

/** The Standard Webhooks secret prefix: `whsec_` and the base64 of the key's bytes. */
const PREFIX = 'whsec_'

/** A subscription's secret as an HMAC key, made once. */
export const webhookKey = (secret: string): KeyObject =>
  createSecretKey(Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64'))

/**
 * The Standard Webhooks `webhook-signature` header: `v1,` and the base64 HMAC-SHA256, under the
 * subscription's key, of `<webhook-id>.<webhook-timestamp>.<body>`. node:crypto's HMAC, not the
 * `standardwebhooks` package's pure-JavaScript SHA-256 (which cost more than the POST); the tests
 * verify every push with that package.
 */
export function webhookSignature (key: KeyObject, id: string, timestampSeconds: number, body: Buffer): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSeconds}.`).update(body).digest('base64')}`
}
