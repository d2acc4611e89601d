import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Journal, JournalEntry } from '@firehose/journal'
import { parseSubscriptionRequest, SpecError, START_AT_PROBLEM, startAtOf, SubscriptionError, type Queue, type Subscriptions } from '@firehose/subscriptions'
import type { AccessControl } from '../auth/access-control.js'
import { isValidFilter } from '@firehose/runtime'
import { envelopeOf, envelopeParts } from './envelope.js'
import { HttpError, userOfRequest, type User } from './reader-access.js'
import { parseSince } from './since.js'

export interface SubscriptionsApiDeps {
  subscriptions: Subscriptions
  journal: Journal
  access: AccessControl
}

/** Bodies are small JSON objects: past this, 413. */
const BODY_LIMIT = 64 * 1024
const MAX_PULL = 1000
const MAX_WAIT_SECONDS = 60
const DAY = 86_400_000

/** Where a stream subscription is read, as seen from the request that asks (its host, ws or wss). */
function streamLocation (request: FastifyRequest, id: string): string {
  return `${request.protocol === 'https' ? 'wss' : 'ws'}://${request.headers.host ?? 'localhost'}/event-stream/${id}`
}

/** What GET shows of a subscription (never a push subscription's secret: that is shown once, at creation). */
function view (queue: Queue, pushing: number, location: string | undefined): Record<string, unknown> {
  const { spec, next, disabled } = queue.state
  return {
    name: spec.name,
    owner: spec.owner,
    type: spec.type,
    topics: spec.topics,
    ...(location === undefined ? {} : { location }),
    ...(spec.push === undefined
      ? {}
      : {
          push: { endpoint: spec.push.endpoint, audience: spec.push.audience, format: spec.push.format },
          state: disabled === undefined ? 'active' : 'disabled',
          ...(disabled === undefined ? {} : { disabledReason: disabled.reason, disabledAt: new Date(disabled.at).toISOString() }),
          pushing
        }),
    ackDeadline: spec.ackDeadlineMs / 1000,
    maxDeliveries: spec.maxDeliveries,
    retentionDays: spec.retentionMs / DAY,
    ordered: spec.ordered,
    created: new Date(spec.created).toISOString(),
    next,
    outstanding: queue.outstanding,
    deadLetters: queue.deadLetterCount,
    counters: queue.counters
  }
}

/** The user behind a request: subscriptions belong to users, so anonymous requests are refused. */
const userOf = async (request: FastifyRequest, access: AccessControl): Promise<User> => await userOfRequest(request, access, 'subscriptions belong to users')

const objectBody = (body: unknown): Record<string, unknown> => {
  if (body === undefined || body === null) return {}
  if (typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, '(body): expected a JSON object')
  return body as Record<string, unknown>
}

function wholeNumber (body: Record<string, unknown>, field: string, fallback: number, min: number, max: number): number {
  const value = body[field] ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw new HttpError(400, `${field}: ${JSON.stringify(body[field])} is not a whole number from ${min} to ${max}`)
  return value
}

function ackIds (body: Record<string, unknown>): string[] {
  const ids = body.ackIds
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_PULL) throw new HttpError(400, `ackIds: expected a list of 1 to ${MAX_PULL} ack ids`)
  ids.forEach((id, i) => { if (typeof id !== 'string') throw new HttpError(400, `ackIds[${i}]: expected a string`) })
  return ids as string[]
}

/**
 * Pulls up to `max`; with nothing to hand out, waits up to `waitMs` for an event of this
 * subscription (not any append: a busy bus would wake every waiting pull), a nack, seek or
 * replay, a lease's deadline or the reader going away (long poll), and pulls again.
 */
async function pullWaiting (queue: Queue, max: number, waitMs: number, gone: AbortSignal): Promise<Awaited<ReturnType<Queue['pull']>>> {
  const until = Date.now() + waitMs
  for (;;) {
    const deliveries = await queue.pull(max)
    const left = until - Date.now()
    if (deliveries.length > 0 || left <= 0 || gone.aborted) return deliveries
    const deadline = queue.nextDeadline()
    await new Promise<void>(resolve => {
      const done = (): void => {
        clearTimeout(timer)
        stopListening()
        gone.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, Math.max(0, Math.min(left, deadline === undefined ? left : deadline - Date.now())))
      const stopListening = queue.onNew(done)
      gone.addEventListener('abort', done)
    })
  }
}

/**
 * A pull's answer as bytes: a JSON payload goes in as it was published, never decoded, parsed
 * or serialised again.
 */
function pullBody (deliveries: ReadonlyArray<{ ackId: string, delivery: number, entry: JournalEntry }>): Buffer {
  const parts: Buffer[] = []
  let text = '['
  deliveries.forEach((d, i) => {
    const { head, payload } = envelopeParts(d.entry)
    text += `${i === 0 ? '' : ','}{"ackId":"${d.ackId}","delivery":${d.delivery},${head.slice(1)}`
    if (payload === undefined) return
    parts.push(Buffer.from(text), payload)
    text = '}'
  })
  parts.push(Buffer.from(text + ']'))
  return Buffer.concat(parts)
}

/**
 * /v1/subscriptions: each authenticated user's pull subscriptions (docs/subscriptions.md).
 * Another user's subscription is "not found" (404) unless the user is an admin.
 */
export function registerSubscriptionsApi (app: FastifyInstance, deps: SubscriptionsApiDeps): void {
  const { subscriptions, journal, access } = deps
  const options = { bodyLimit: BODY_LIMIT }
  const queueOf = async (request: FastifyRequest): Promise<Queue> => {
    const user = await userOf(request, access)
    return await subscriptions.get(user.username, (request.params as { name: string }).name)
  }
  /** On a cluster node the figures are looked up in Redis first: another node may have moved them. */
  const show = async (queue: Queue, request: FastifyRequest): Promise<Record<string, unknown>> => {
    await queue.refresh()
    const id = queue.state.spec.stream?.id
    return view(queue, subscriptions.pushing(queue.name), id === undefined ? undefined : streamLocation(request, id))
  }

  app.post('/v1/subscriptions', options, async (request, reply) => {
    const user = await userOf(request, access)
    const parsed = parseSubscriptionRequest(request.body, isValidFilter, parseSince)
    parsed.spec.topics.forEach((filter, i) => {
      if (!user.access.canSubscribe(filter)) throw new HttpError(403, `topics[${i}]: ${JSON.stringify(filter)} may not be read by ${user.username}`)
    })
    const queue = await subscriptions.create(user.username, parsed)
    const secret = queue.state.spec.push?.secret
    const shown = await show(queue, request)
    // a stream's location is where it is read; the others' is where they are managed
    return await reply.code(201).header('location', typeof shown.location === 'string' ? shown.location : `/v1/subscriptions/${queue.name}`).send({ ...shown, ...(secret === undefined ? {} : { secret }) })
  })
  app.get('/v1/subscriptions', async request => {
    const user = await userOf(request, access)
    return { subscriptions: await Promise.all(subscriptions.list(user.username).map(async queue => await show(queue, request))) }
  })
  app.get('/v1/subscriptions/:name', async request => await show(await queueOf(request), request))
  app.delete('/v1/subscriptions/:name', async (request, reply) => {
    const user = await userOf(request, access)
    await subscriptions.delete(user.username, (request.params as { name: string }).name)
    return await reply.code(204).send()
  })
  app.post('/v1/subscriptions/:name/pull', options, async (request, reply) => {
    const queue = await queueOf(request)
    if (queue.state.spec.type !== 'pull') throw new HttpError(400, `"${queue.name}" is a ${queue.state.spec.type} subscription: the broker delivers it; pull is for pull subscriptions`)
    const body = objectBody(request.body)
    const max = wholeNumber(body, 'max', 100, 1, MAX_PULL)
    const waitSeconds = wholeNumber(body, 'waitSeconds', 0, 0, MAX_WAIT_SECONDS)
    const gone = new AbortController()
    const socket = request.raw.socket
    const onClose = (): void => { gone.abort() }
    socket.once('close', onClose)
    // a kept-alive connection carries many pulls: each takes its listener off again
    const deliveries = await pullWaiting(queue, max, waitSeconds * 1000, gone.signal).finally(() => { socket.off('close', onClose) })
    return await reply.type('application/json; charset=utf-8').send(pullBody(deliveries))
  })
  app.post('/v1/subscriptions/:name/ack', options, async request => {
    const queue = await queueOf(request)
    return { acked: await queue.ack(ackIds(objectBody(request.body))) }
  })
  app.post('/v1/subscriptions/:name/nack', options, async request => {
    const queue = await queueOf(request)
    return { nacked: await queue.nack(ackIds(objectBody(request.body))) }
  })
  app.post('/v1/subscriptions/:name/seek', options, async request => {
    const queue = await queueOf(request)
    const to = objectBody(request.body).to
    const start = startAtOf(to, parseSince)
    if (start === undefined) throw new HttpError(400, `to: ${JSON.stringify(to)} ${START_AT_PROBLEM}`)
    if (queue.state.spec.type === 'stream') throw new HttpError(400, `"${queue.name}" is a stream subscription: its readers choose where to start (X-StreamOffsetFrom*)`)
    await queue.seek(await subscriptions.startOffset(start))
    return await show(queue, request)
  })
  app.post('/v1/subscriptions/:name/enable', async request => {
    const user = await userOf(request, access)
    return await show(await subscriptions.enable(user.username, (request.params as { name: string }).name), request)
  })
  app.get('/.well-known/jwks.json', async (_request, reply) => {
    const jwks = subscriptions.jwks()
    if (jwks === undefined) throw new HttpError(404, 'this broker does not push (subscriptions.push: false): it has no signing keys')
    return await reply.header('cache-control', 'public, max-age=300').send(jwks)
  })
  app.get('/v1/subscriptions/:name/dead-letters', async request => {
    const queue = await queueOf(request)
    const letters = []
    for (const [offset, letter] of await queue.deadLetters()) {
      const [entry] = await journal.read(offset, 1)
      letters.push({ offset, deliveries: letter.deliveries, reason: letter.reason, at: new Date(letter.at).toISOString(), event: entry?.offset === offset ? envelopeOf(entry) : null })
    }
    return { deadLetters: letters }
  })
  app.post('/v1/subscriptions/:name/dead-letters/replay', async request => ({ replayed: await (await queueOf(request)).replayDeadLetters() }))
}

/** The HTTP status and message of a refusal from the subscriptions package, if it is one. */
export function subscriptionRefusal (err: unknown): HttpError | undefined {
  if (err instanceof SpecError) return new HttpError(400, err.message)
  if (err instanceof SubscriptionError) return new HttpError(err.status, err.message)
  return undefined
}
