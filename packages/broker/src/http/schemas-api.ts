import type { FastifyInstance } from 'fastify'
import type { Catalogue } from '@firehose/schemas'
import { HttpError } from './reader-access.js'

/** The schemas change only with the broker: clients may keep them a while. */
const CACHE = 'public, max-age=300'
/** A payload to check: at most one MQTT packet of the default size. */
const VALIDATE_LIMIT = 1024 * 1024

/**
 * The schema catalogue (docs/topics.md): `GET /v1/schemas` is `{ "<MQTT filter>": "/v1/schemas/<id>" }`,
 * `GET /v1/schemas/<id>` one JSON Schema (2020-12), `POST /v1/schemas/validate?topic=T` checks a
 * payload against T's schema; for anyone (they describe, they hold no events).
 */
export function registerSchemasApi (app: FastifyInstance, catalogue: Catalogue): void {
  app.get('/v1/schemas', async (_request, reply) => await reply.header('cache-control', CACHE).send(catalogue.index()))
  // a payload checked against its topic's schema (the viewer flags messages that do not match);
  // the body is the payload as published, whatever its type
  app.register(async scope => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: VALIDATE_LIMIT }, (_request, body, done) => { done(null, body) })
    scope.post('/v1/schemas/validate', async request => {
      const topic = (request.query as Record<string, unknown>).topic
      if (typeof topic !== 'string' || topic === '') throw new HttpError(400, 'topic: expected ?topic=<the topic the payload was published on>')
      const payload = request.body instanceof Buffer ? request.body : Buffer.alloc(0)
      const verdict = catalogue.validate(topic, payload)
      return verdict.valid === undefined ? { valid: null } : verdict.valid ? { valid: true, schema: `/v1/schemas/${catalogue.idFor(topic)!}` } : { valid: false, schema: `/v1/schemas/${catalogue.idFor(topic)!}`, errors: verdict.errors }
    })
  })
  app.get('/v1/schemas/:id', async (request, reply) => {
    const { id } = request.params as { id: string }
    const schema = catalogue.schemas.get(id)
    if (schema === undefined) throw new HttpError(404, `no schema "${id}" (GET /v1/schemas lists them)`)
    return await reply.header('cache-control', CACHE).type('application/schema+json').send(JSON.stringify(schema))
  })
}
