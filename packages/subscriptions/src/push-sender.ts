import { randomUUID } from 'node:crypto'
import { SignJWT, type CryptoKey, type JWK } from 'jose'
import { Webhook } from 'standardwebhooks'
import type { JournalEntry } from '@firehose/journal'
import type { Delivery } from './pull-queue.js'
import type { PushOutcome } from './push-worker.js'
import type { SubscriptionSpec } from './spec.js'

/** A key push requests are signed with: the first of the configured ones signs, all are published. */
export interface SigningKey {
  kid: string
  alg: 'EdDSA' | 'RS256'
  privateKey: CryptoKey
  /** the public half, as /.well-known/jwks.json publishes it */
  publicJwk: JWK
}

export interface PushSenderOptions {
  /** the JWT's `iss` */
  issuer: string
  keys: readonly SigningKey[]
  /** ms a POST may take before it counts as failed (and is retried) */
  timeoutMs: number
  /** seconds a token is valid: receivers should refuse older ones */
  tokenLifetimeSeconds?: number
}

/** The JWT lifetime: a key taken out of the configuration stays published at least this long. */
export const TOKEN_LIFETIME_SECONDS = 600

/**
 * POSTs one event to a push subscription's endpoint, signed twice: a JWT in `Authorization:
 * Bearer` (the key's `kid`, `aud` the subscription's audience, `iss`, `iat`, `exp`) and the
 * Standard Webhooks headers (`webhook-id`, stable across retries of one event; `webhook-timestamp`;
 * `webhook-signature`, HMAC-SHA256 with the subscription's secret). Node's fetch keeps
 * connections alive; redirects are not followed (an endpoint moved is the owner's to fix).
 */
export class PushSender {
  constructor (private readonly options: PushSenderOptions) {
    if (options.keys.length === 0) throw new Error('push: no signing key')
  }

  /** The public keys: `{ keys: [...] }`, as /.well-known/jwks.json serves them. */
  jwks (): { keys: JWK[] } {
    return { keys: this.options.keys.map(k => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' })) }
  }

  async send (delivery: Delivery, spec: SubscriptionSpec): Promise<PushOutcome> {
    const push = spec.push
    if (push === undefined) return { kind: 'reject', reason: 'not a push subscription' }
    const { entry } = delivery
    const cloud = push.format === 'cloudevents'
    const body = JSON.stringify(cloud ? cloudEvent(entry, spec) : pubsubMessage(entry, spec))
    const key = this.options.keys[0]!
    const token = await new SignJWT({ subscription: spec.name, owner: spec.owner })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.options.issuer)
      .setAudience(push.audience)
      .setIssuedAt()
      .setExpirationTime(`${this.options.tokenLifetimeSeconds ?? TOKEN_LIFETIME_SECONDS}s`)
      .setJti(randomUUID())
      .sign(key.privateKey)
    const id = `${spec.name}-${entry.offset}`
    const sentAt = new Date()
    let response: Response
    try {
      response = await fetch(push.endpoint, {
        method: 'POST',
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
        headers: {
          'content-type': cloud ? 'application/cloudevents+json' : 'application/json',
          authorization: `Bearer ${token}`,
          'webhook-id': id,
          'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
          'webhook-signature': new Webhook(push.secret).sign(id, sentAt, body),
          'user-agent': 'firehose-push'
        }
      })
    } catch (err) {
      const cause = (err as { cause?: Error }).cause
      return { kind: 'retry', reason: (err as Error).name === 'TimeoutError' ? `no answer within ${this.options.timeoutMs} ms` : cause?.message ?? (err as Error).message }
    }
    await response.body?.cancel().catch(() => {})
    const { status } = response
    if (status >= 200 && status < 300) return { kind: 'ok' }
    const reason = `HTTP ${status} from ${push.endpoint}`
    if (status === 410) return { kind: 'gone', reason }
    if (status === 429 || status >= 500 || status === 408) return { kind: 'retry', reason }
    return { kind: 'reject', reason }
  }
}

const iso = (ms: number): string => new Date(ms).toISOString()

/** A Pub/Sub push envelope (both spellings of the id and time fields, as Pub/Sub sends them). */
function pubsubMessage (entry: JournalEntry, spec: SubscriptionSpec): unknown {
  const id = String(entry.offset)
  return {
    message: {
      attributes: { 'event-type': entry.topic, topic: entry.topic, offset: id },
      data: entry.payload.toString('base64'),
      messageId: id,
      message_id: id,
      publishTime: iso(entry.timestamp),
      publish_time: iso(entry.timestamp)
    },
    subscription: spec.name
  }
}

/** A CloudEvents 1.0 event, structured mode: `data` as JSON when the payload is, else `data_base64`. */
function cloudEvent (entry: JournalEntry, spec: SubscriptionSpec): unknown {
  return {
    specversion: '1.0',
    id: String(entry.offset),
    source: `firehose/subscriptions/${spec.name}`,
    type: entry.topic,
    subject: entry.topic,
    time: iso(entry.timestamp),
    ...(entry.json === true
      ? { datacontenttype: 'application/json', data: JSON.parse(entry.payload.toString('utf8')) as unknown }
      : { datacontenttype: 'application/octet-stream', data_base64: entry.payload.toString('base64') })
  }
}
