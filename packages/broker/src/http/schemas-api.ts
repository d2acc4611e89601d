import type { FastifyInstance } from 'fastify'
import type { Catalogue } from '@firehose/schemas'
import { HttpError } from './reader-access.js'

/** The schemas change only with the broker: clients may keep them a while. */
const CACHE = 'public, max-age=300'

/**
 * The schema catalogue (docs/topics.md): `GET /v1/schemas` is `{ "<MQTT filter>": "/v1/schemas/<id>" }`,
 * `GET /v1/schemas/<id>` one JSON Schema (2020-12), for anyone (they describe, they hold no events).
 */
export function registerSchemasApi (app: FastifyInstance, catalogue: Catalogue): void {
  app.get('/v1/schemas', async (_request, reply) => await reply.header('cache-control', CACHE).send(catalogue.index()))
  app.get('/v1/schemas/:id', async (request, reply) => {
    const { id } = request.params as { id: string }
    const schema = catalogue.schemas.get(id)
    if (schema === undefined) throw new HttpError(404, `no schema "${id}" (GET /v1/schemas lists them)`)
    return await reply.header('cache-control', CACHE).type('application/schema+json').send(JSON.stringify(schema))
  })
}
