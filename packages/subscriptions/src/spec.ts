import { z } from 'zod'
import { formatZodIssues } from '@firehose/runtime'

/** A subscription's name: its URL path segment and its key in the store. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** Where a new subscription starts: only what comes next, the oldest event held, an offset, or a time (ms). */
export type StartAt = { from: 'now' } | { from: 'earliest' } | { offset: number } | { timestamp: number }

/** Where and how a push subscription delivers. */
export interface PushSpec {
  /** the URL each event is POSTed to */
  endpoint: string
  /** the JWT's `aud` (default: the endpoint) */
  audience: string
  format: 'pubsub' | 'cloudevents'
  /** the Standard Webhooks key, `whsec_...`: shown once, at creation */
  secret: string
}

/** What a subscription is, as created: everything but where it has got to. */
export interface SubscriptionSpec {
  name: string
  owner: string
  /** MQTT filters */
  topics: string[]
  type: 'pull' | 'push' | 'stream'
  /** push subscriptions only */
  push?: PushSpec
  /** stream subscriptions only: the capability in their location, /event-stream/{id} */
  stream?: { id: string }
  /** ms a pulled event waits for its ack before it is delivered again */
  ackDeadlineMs: number
  /** deliveries of one event before it goes to the dead letters */
  maxDeliveries: number
  /** ms an event is kept for the subscription; older unacked ones are dropped (and counted) */
  retentionMs: number
  /** one event in flight at a time, in journal order */
  ordered: boolean
  /** ms since the epoch */
  created: number
}

/** What a start that is none of the four forms is told. */
export const START_AT_PROBLEM = 'is not "now", "earliest", an offset or an ISO 8601 date'

/**
 * A start as the API takes it (a creation's `startAt`, a seek's `to`): "now", "earliest", an
 * offset, or text `parseText` reads (an offset, a ms timestamp, an ISO 8601 date); undefined
 * when it is none of those.
 */
export function startAtOf (value: unknown, parseText: (text: string) => StartAt | undefined): StartAt | undefined {
  if (value === 'now' || value === 'earliest') return { from: value }
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? { offset: value } : undefined
  return typeof value === 'string' ? parseText(value) : undefined
}

/** A request the API refuses: `field: problem`, for a 400. */
export class SpecError extends Error {}

const DAY = 86_400_000

const requestSchema = z.strictObject({
  name: z.string().regex(NAME, 'letters, digits, ".", "_" and "-", starting with a letter or a digit, at most 128'),
  topics: z.array(z.string()).min(1, 'at least one MQTT topic filter').max(100),
  type: z.enum(['pull', 'push', 'stream']).default('pull'),
  push: z.strictObject({
    endpoint: z.string().min(1),
    audience: z.string().min(1).optional(),
    format: z.enum(['pubsub', 'cloudevents']).default('pubsub')
  }).optional(),
  ackDeadline: z.number().int().min(1).max(3600).default(60),
  maxDeliveries: z.number().int().min(1).max(1000).optional(),
  retentionDays: z.number().min(1 / 24).max(365).default(7),
  ordered: z.boolean().default(false),
  startAt: z.union([z.literal('now'), z.literal('earliest'), z.number().int().min(1), z.string()]).default('now')
})

export interface SubscriptionRequest {
  /** maxDeliveries undefined: the type's default (pull: 10; push: one more than the retry schedule's steps) */
  spec: Omit<SubscriptionSpec, 'owner' | 'created' | 'maxDeliveries' | 'push' | 'stream'> & { maxDeliveries?: number, push?: Omit<PushSpec, 'secret'> }
  startAt: StartAt
}

/**
 * A creation request's body, checked: every problem named by its field. `isValidFilter` is the
 * broker's (MQTT filter syntax); `parseStart` reads a start given as text (an offset, a ms
 * timestamp, an ISO 8601 date: as the history API's `since`).
 */
export function parseSubscriptionRequest (body: unknown, isValidFilter: (filter: string) => boolean, parseStart: (text: string) => StartAt | undefined): SubscriptionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new SpecError('(body): expected a JSON object')
  const parsed = requestSchema.safeParse(body)
  if (!parsed.success) throw new SpecError(formatZodIssues(parsed.error.issues).join('; '))
  const r = parsed.data
  const problems: string[] = []
  r.topics.forEach((filter, i) => { if (!isValidFilter(filter)) problems.push(`topics[${i}]: ${JSON.stringify(filter)} is not an MQTT topic filter`) })
  let push: Omit<PushSpec, 'secret'> | undefined
  if (r.type === 'push') {
    if (r.push === undefined) problems.push('push: a push subscription needs { "endpoint": URL }')
    else {
      let url: URL | undefined
      try { url = new URL(r.push.endpoint) } catch {}
      if (url === undefined || (url.protocol !== 'https:' && url.protocol !== 'http:')) problems.push(`push.endpoint: ${JSON.stringify(r.push.endpoint)} is not an http:// or https:// URL`)
      push = { endpoint: r.push.endpoint, audience: r.push.audience ?? r.push.endpoint, format: r.push.format }
    }
  } else if (r.push !== undefined) problems.push(`push: only for "type": "push" (this one is "${r.type}")`)
  const startAt = startAtOf(r.startAt, parseStart)
  if (startAt === undefined) problems.push(`startAt: ${JSON.stringify(r.startAt)} ${START_AT_PROBLEM}`)
  if (problems.length > 0 || startAt === undefined) throw new SpecError(problems.join('; '))
  return {
    spec: {
      name: r.name,
      topics: r.topics,
      type: r.type,
      ...(push === undefined ? {} : { push }),
      ackDeadlineMs: r.ackDeadline * 1000,
      ...(r.maxDeliveries === undefined ? {} : { maxDeliveries: r.maxDeliveries }),
      retentionMs: Math.round(r.retentionDays * DAY),
      ordered: r.ordered
    },
    startAt
  }
}
