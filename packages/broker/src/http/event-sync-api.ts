import type { FastifyInstance, FastifyRequest } from 'fastify'
import { EventSyncError, parseRule, RuleError, ruleTopics, type EventSyncService, type HttpEventBody, type Rule } from '@firehose/event-sync'
import type { AccessControl } from '../auth/access-control.js'
import { HttpError, readerOf, userOfRequest, type Reader, type User } from './reader-access.js'

export interface EventSyncApiDeps {
  eventSync: EventSyncService
  access: AccessControl
  /** users who see and manage every rule made through the API */
  admins: ReadonlySet<string>
  /** largest event body taken, in bytes */
  maxEventBytes: number
}

/** Request headers never kept with an event: credentials. */
const CREDENTIALS = new Set(['authorization', 'proxy-authorization', 'cookie'])
const utf8 = new TextDecoder('utf-8', { fatal: true })

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
  const manages = (reader: Reader, rule: Rule): boolean => reader.username !== undefined && (reader.username === rule.owner || admins.has(reader.username))
  const sees = (reader: Reader, rule: Rule): boolean => reader.access.canReceive(rule.target.topic) || manages(reader, rule)
  /** a rule the reader may see: its combined events are theirs to read, or it is theirs */
  const visible = async (request: FastifyRequest): Promise<Rule> => {
    const reader = await readerOf(request, access)
    const { name } = request.params as { name: string }
    const rule = eventSync.rule(name)
    if (rule === undefined || !sees(reader, rule)) throw new HttpError(404, `no rule named "${name}"${reader.username === undefined ? ' (or it is not for anonymous readers: authenticate with HTTP Basic)' : ''}`)
    return rule
  }
  /**
   * A rule `user` may post `topic` to (an event, a trigger, a reset): with write access to the
   * topic, or owning the rule. Refused: 403 when they may see the rule, 404 as for none otherwise.
   */
  const postable = (user: User, name: string, topic: (rule: Rule) => string): Rule => {
    const rule = eventSync.rule(name)
    if (rule !== undefined && (user.access.canPublish(topic(rule)) || manages(user, rule))) return rule
    if (rule === undefined || !user.access.canReceive(rule.target.topic)) throw new HttpError(404, `no rule named "${name}"`)
    throw new HttpError(403, `${user.username} may not post to rule "${name}": that needs write access to ${topic(rule)} (the ACL's eventsync/${name}/#) or owning the rule`)
  }
  const view = (rule: Rule): Record<string, unknown> => ({
    ...rule.definition,
    source: eventSync.isConfigured(rule.name) ? 'configuration' : 'api',
    location: `/v1/event-sync/${rule.name}`
  })
  const stateOf = async (rule: Rule): Promise<Record<string, unknown>> => await eventSync.state(rule.name) ?? refusal(new EventSyncError(404, `no rule named "${rule.name}"`))

  app.get('/v1/event-sync', async request => {
    const reader = await readerOf(request, access)
    return { rules: eventSync.rules().filter(rule => sees(reader, rule)).map(view) }
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
    return await reply.code(201).header('location', `/v1/event-sync/${rule.name}`).send(view(rule))
  })
  app.get('/v1/event-sync/:name', async request => {
    const rule = await visible(request)
    return { ...view(rule), state: await stateOf(rule) }
  })
  app.delete('/v1/event-sync/:name', async (request, reply) => {
    const user = await userOfRequest(request, access, 'rules belong to users')
    const { name } = request.params as { name: string }
    const rule = eventSync.rule(name)
    if (rule !== undefined && !eventSync.isConfigured(name) && !manages(user, rule)) throw new HttpError(403, `"${name}" is ${rule.owner ?? 'another user'}'s`)
    await eventSync.remove(name).catch(refusal)
    return await reply.code(204).send()
  })
  app.get('/v1/event-sync/:name/config', async request => (await visible(request)).definition)
  app.get('/v1/event-sync/:name/state', async request => await stateOf(await visible(request)))
  for (const command of ['trigger', 'reset'] as const) {
    app.post(`/v1/event-sync/:name/${command}`, async (request, reply) => {
      const user = await userOf(request)
      const rule = postable(user, (request.params as { name: string }).name, r => ruleTopics[command](r.name))
      await eventSync[command](rule.name, user.username).catch(refusal)
      return await reply.code(202).send({ rule: rule.name, [command]: 'journaled' })
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
      const endpoint = postable(user, name, r => r.endpoints.find(e => e.eventKey === eventKey)?.topic ?? ruleTopics.event(name, eventKey)).endpoints.find(e => e.eventKey === eventKey)
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
