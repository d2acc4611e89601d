import type { FastifyInstance, FastifyRequest } from 'fastify'
import { EventSyncError, parseRule, RuleError, ruleTopics, type EventSync, type HttpEventBody, type RuleState } from '@firehose/event-sync'
import type { AccessControl } from '../auth/access-control.js'
import { HttpError, readerOf, userOfRequest, type Reader, type User } from './reader-access.js'

export interface EventSyncApiDeps {
  eventSync: EventSync
  access: AccessControl
  /** users who see and manage every rule made through the API */
  admins: ReadonlySet<string>
  /** largest event body taken, in bytes */
  maxEventBytes: number
}

/** Request headers never kept with an event: credentials. */
const CREDENTIALS = new Set(['authorization', 'proxy-authorization', 'cookie'])
const utf8 = new TextDecoder('utf-8', { fatal: true })
const iso = (ms: number): string => new Date(ms).toISOString()

/** The request's headers as the event keeps them (names as sent, every value), credentials stripped. */
function headersOf (rawHeaders: readonly string[]): Record<string, string[]> {
  const headers: Record<string, string[]> = {}
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!
    if (CREDENTIALS.has(name.toLowerCase())) continue
    ;(headers[name] ??= []).push(rawHeaders[i + 1]!)
  }
  return headers
}

function queryOf (url: string): Record<string, string[]> {
  const query: Record<string, string[]> = {}
  const at = url.indexOf('?')
  if (at < 0) return query
  for (const [key, value] of new URLSearchParams(url.slice(at + 1))) (query[key] ??= []).push(value)
  return query
}

/** What GET .../state shows: the events held per endpoint, when the oldest leaves the period, what is pending. */
function stateOf (state: RuleState): Record<string, unknown> {
  const { rule } = state
  const period = rule.trigger.observationPeriodMs
  const endpoints: Record<string, unknown> = {}
  let nextExpiry: number | undefined
  rule.endpoints.forEach((endpoint, i) => {
    const held = state.held[i]!
    if (held.size > 0) nextExpiry = Math.min(nextExpiry ?? Infinity, held.timestampAt(0) + period)
    endpoints[endpoint.eventKey] = {
      topic: endpoint.topic,
      events: held.size,
      minEvents: endpoint.minEvents,
      ...(held.size === 0 ? {} : { FirstEventDate: iso(held.timestampAt(0)), lastEventDate: iso(held.timestampAt(held.size - 1)) }),
      eventsTotal: state.counters.events[i]
    }
  })
  const { through, exportedThrough } = state.place
  return {
    name: rule.name,
    endpoints,
    nextExpiry: nextExpiry === undefined ? null : iso(nextExpiry),
    through,
    exportedThrough,
    pending: state.pending.size,
    triggers: state.counters.triggers,
    expired: state.counters.expired
  }
}

/**
 * /v1/event-sync: the rules' configuration and state, HTTP events, manual triggers and resets,
 * and rules made through the API (owned, as subscriptions are). Events, triggers and resets are
 * journaled commands (eventsync/<rule>/...): posting them needs write access to those topics in
 * the ACL, or owning the rule.
 */
export function registerEventSyncApi (app: FastifyInstance, { eventSync, access, admins, maxEventBytes }: EventSyncApiDeps): void {
  const refusal = (err: unknown): never => {
    if (err instanceof EventSyncError) throw new HttpError(err.status, err.message)
    if (err instanceof RuleError) throw new HttpError(400, err.problems.join('\n'))
    throw err
  }
  const userOf = async (request: FastifyRequest): Promise<User> => await userOfRequest(request, access, 'posting to an event-sync rule needs a user')
  const manages = (reader: Reader, state: RuleState): boolean => reader.username !== undefined && (reader.username === state.rule.owner || admins.has(reader.username))
  /** a rule the reader may see: its combined events are theirs to read, or it is theirs */
  const visible = async (request: FastifyRequest): Promise<{ reader: Reader, state: RuleState }> => {
    const reader = await readerOf(request, access)
    const { name } = request.params as { name: string }
    const state = eventSync.get(name)
    if (state === undefined || !(reader.access.canReceive(state.rule.target.topic) || manages(reader, state))) throw new HttpError(404, `no rule named "${name}"${reader.username === undefined ? ' (or it is not for anonymous readers: authenticate with HTTP Basic)' : ''}`)
    return { reader, state }
  }
  /**
   * A rule `user` may post `topic` to (an event, a trigger, a reset): with write access to the
   * topic, or owning the rule. Refused: 403 when they may see the rule, 404 as for none otherwise.
   */
  const postable = (user: User, name: string, topic: (state: RuleState) => string): RuleState => {
    const state = eventSync.get(name)
    if (state !== undefined && (user.access.canPublish(topic(state)) || manages(user, state))) return state
    if (state === undefined || !user.access.canReceive(state.rule.target.topic)) throw new HttpError(404, `no rule named "${name}"`)
    throw new HttpError(403, `${user.username} may not post to rule "${name}": that needs write access to ${topic(state)} (the ACL's eventsync/${name}/#) or owning the rule`)
  }
  const view = (state: RuleState): Record<string, unknown> => ({
    ...state.rule.definition,
    source: eventSync.isConfigured(state.rule.name) ? 'configuration' : 'api',
    location: `/v1/event-sync/${state.rule.name}`
  })

  app.get('/v1/event-sync', async request => {
    const reader = await readerOf(request, access)
    return { rules: eventSync.all().filter(s => reader.access.canReceive(s.rule.target.topic) || manages(reader, s)).map(view) }
  })
  app.post('/v1/event-sync', { bodyLimit: 64 * 1024 }, async (request, reply) => {
    const user = await userOfRequest(request, access, 'rules belong to users')
    if (request.body === null || typeof request.body !== 'object' || Array.isArray(request.body)) throw new HttpError(400, '(body): expected a JSON object (the rule)')
    const rule = (() => { try { return parseRule(request.body, '', user.username) } catch (err) { return refusal(err) } })()
    rule.endpoints.forEach((endpoint, i) => {
      if (!endpoint.http && !user.access.canSubscribe(endpoint.topic)) throw new HttpError(403, `endpoints[${i}].topic: ${user.username} may not read ${endpoint.topic}`)
    })
    if (rule.target.topic !== ruleTopics.output(rule.name) && !user.access.canPublish(rule.target.topic)) throw new HttpError(403, `target.topic: ${user.username} may not publish to ${rule.target.topic} (the default, eventsync/${rule.name}, needs no permission)`)
    await eventSync.create(rule).catch(refusal)
    return await reply.code(201).header('location', `/v1/event-sync/${rule.name}`).send(view(eventSync.get(rule.name)!))
  })
  app.get('/v1/event-sync/:name', async request => {
    const { state } = await visible(request)
    return { ...view(state), state: stateOf(state) }
  })
  app.delete('/v1/event-sync/:name', async (request, reply) => {
    const user = await userOfRequest(request, access, 'rules belong to users')
    const { name } = request.params as { name: string }
    const state = eventSync.get(name)
    if (state !== undefined && !eventSync.isConfigured(name) && !manages(user, state)) throw new HttpError(403, `"${name}" is ${state.rule.owner ?? 'another user'}'s`)
    await eventSync.remove(name).catch(refusal)
    return await reply.code(204).send()
  })
  app.get('/v1/event-sync/:name/config', async request => (await visible(request)).state.rule.definition)
  app.get('/v1/event-sync/:name/state', async request => stateOf((await visible(request)).state))
  for (const command of ['trigger', 'reset'] as const) {
    app.post(`/v1/event-sync/:name/${command}`, async (request, reply) => {
      const user = await userOf(request)
      const state = postable(user, (request.params as { name: string }).name, s => ruleTopics[command](s.rule.name))
      await eventSync[command](state.rule.name, user.username).catch(refusal)
      return await reply.code(202).send({ rule: state.rule.name, [command]: 'journaled' })
    })
  }

  // an event's body is kept as sent, whatever its type: parsed here as bytes
  app.register(async scope => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxEventBytes }, (_request, body, done) => { done(null, body) })
    scope.post('/v1/event-sync/:name/event/:eventKey', async (request, reply) => {
      const user = await userOf(request)
      const { name, eventKey } = request.params as { name: string, eventKey: string }
      // an unknown event key is checked as the topic an HTTP endpoint of that name would have
      const endpoint = postable(user, name, s => s.rule.endpoints.find(e => e.eventKey === eventKey)?.topic ?? ruleTopics.event(name, eventKey)).rule.endpoints.find(e => e.eventKey === eventKey)
      const bytes = request.body === undefined || request.body === null ? Buffer.alloc(0) : request.body as Buffer
      let content: string
      try {
        content = utf8.decode(bytes)
      } catch {
        throw new HttpError(415, 'an event\'s body is text (UTF-8): send binary data encoded (base64, say)')
      }
      const body: HttpEventBody = { headers: headersOf(request.raw.rawHeaders), queryParams: queryOf(request.url), content }
      await eventSync.postEvent(name, eventKey, body, user.username).catch(refusal)
      return await reply.code(202).send({ rule: name, eventKey, topic: endpoint!.topic })
    })
  })
}
