import type { KeyObject } from 'node:crypto'
import { Agent } from 'undici'
import { SignJWT, type CryptoKey, type JWK } from 'jose'
import type { JournalEntry } from '@firehose/journal'
import type { Delivery } from './pull-queue.js'
import type { PushOutcome } from './push-worker.js'
import type { SubscriptionSpec } from './spec.js'
import { webhookKey, webhookSignature } from './webhook-signature.js'

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
/** A cached token is signed again when it has less than this left. */
const TOKEN_REFRESH_SECONDS = 60

/**
 * POSTs one event to a push subscription's endpoint, signed twice: a JWT in `Authorization:
 * Bearer` (the key's `kid`, `aud` the subscription's audience, `iss`, `iat`, `exp`; one token
 * per subscription for most of its lifetime) and the Standard Webhooks headers (`webhook-id`,
 * stable across retries of one event; `webhook-timestamp`; `webhook-signature`, HMAC-SHA256 of
 * this body with the subscription's secret). Connections are kept alive (undici); redirects
 * are not followed (an endpoint moved is the owner's to fix).
 */
export class PushSender {
  readonly #tokens = new Map<string, { token: string, exp: number }>()
  /** per subscription: its HMAC key and its endpoint's parsed URL, made once */
  readonly #targets = new Map<string, { secret: string, key: KeyObject, endpoint: string, url: URL }>()
  /** undici keeps connections alive per origin (and costs about half what node:http does per POST) */
  readonly #agent = new Agent()

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
    const body = Buffer.from(cloud ? JSON.stringify(cloudEvent(entry, spec)) : pubsubMessage(entry, spec))
    const id = `${spec.name}-${entry.offset}`
    const target = this.#target(spec.name, push.secret, push.endpoint)
    const timestamp = Math.floor(Date.now() / 1000)
    const headers = {
      'content-type': cloud ? 'application/cloudevents+json' : 'application/json',
      'content-length': String(body.length),
      authorization: `Bearer ${await this.#token(spec, push.audience)}`,
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': webhookSignature(target.key, id, timestamp, body),
      'user-agent': 'firehose-push'
    }
    let status: number
    try {
      status = await post(this.#agent, target.url, headers, body, this.options.timeoutMs)
    } catch (err) {
      return { kind: 'retry', reason: (err as Error).message }
    }
    if (status >= 200 && status < 300) return { kind: 'ok' }
    const reason = `HTTP ${status} from ${push.endpoint}`
    if (status === 410) return { kind: 'gone', reason }
    if (status === 429 || status >= 500 || status === 408) return { kind: 'retry', reason }
    return { kind: 'reject', reason }
  }

  #target (name: string, secret: string, endpoint: string): { key: KeyObject, url: URL } {
    let target = this.#targets.get(name)
    // a subscription deleted and made again under its name has a new secret
    if (target === undefined || target.secret !== secret || target.endpoint !== endpoint) {
      target = { secret, key: webhookKey(secret), endpoint, url: new URL(endpoint) }
      this.#targets.set(name, target)
    }
    return target
  }

  /** Stops keeping connections alive. */
  close (): void {
    this.#agent.destroy().catch(() => {})
  }

  /**
   * A subscription's token: signed once and used for its POSTs until a minute before it expires
   * (signing per POST cost more than the POST). Keyed by subscription and audience.
   */
  async #token (spec: SubscriptionSpec, audience: string): Promise<string> {
    const key = `${spec.name}\u0000${audience}`
    const nowSeconds = Math.floor(Date.now() / 1000)
    const cached = this.#tokens.get(key)
    if (cached !== undefined && cached.exp - nowSeconds > TOKEN_REFRESH_SECONDS) return cached.token
    const signing = this.options.keys[0]!
    const lifetime = this.options.tokenLifetimeSeconds ?? TOKEN_LIFETIME_SECONDS
    const token = await new SignJWT({ subscription: spec.name, owner: spec.owner })
      .setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: 'JWT' })
      .setIssuer(this.options.issuer)
      .setAudience(audience)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + lifetime)
      .sign(signing.privateKey)
    this.#tokens.set(key, { token, exp: nowSeconds + lifetime })
    return token
  }
}

/**
 * One POST with undici over kept-alive connections; the answer's body is read and dropped.
 * Resolves the status; rejects on no connection, or no answer (headers, then body) within
 * `timeoutMs`.
 */
async function post (agent: Agent, url: URL, headers: Record<string, string>, body: Buffer, timeoutMs: number): Promise<number> {
  const res = await agent.request({ origin: url.origin, path: url.pathname + url.search, method: 'POST', headers, body, headersTimeout: timeoutMs, bodyTimeout: timeoutMs })
  await res.body.dump()
  return res.statusCode
}

const iso = (ms: number): string => new Date(ms).toISOString()

/**
 * A Pub/Sub push envelope (both spellings of the id and time fields, as Pub/Sub sends them),
 * as JSON text written directly: the same text JSON.stringify makes of the object, without
 * making the object.
 */
function pubsubMessage (entry: JournalEntry, spec: SubscriptionSpec): string {
  const id = String(entry.offset)
  const topic = JSON.stringify(entry.topic)
  const time = iso(entry.timestamp)
  return `{"message":{"attributes":{"event-type":${topic},"topic":${topic},"offset":"${id}"},"data":"${entry.payload.toString('base64')}","messageId":"${id}","message_id":"${id}","publishTime":"${time}","publish_time":"${time}"},"subscription":${JSON.stringify(spec.name)}}`
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
