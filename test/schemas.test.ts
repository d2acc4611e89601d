import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { REPO } from './helpers/repo.js'

// ajv 8 as @firehose/schemas has it (the repository's top-level ajv is eslint's, version 6)
interface Validator { (value: unknown): boolean }
const { Ajv2020 } = createRequire(join(REPO, 'packages/schemas/package.json'))('ajv/dist/2020.js') as { Ajv2020: new (options: object) => { addSchema: (schema: object) => void, getSchema: (id: string) => Validator | undefined } }

// The schema catalogue as the broker serves it, over http and https: the index by MQTT filter,
// each schema as its file says, and schemas a client can compile and use on their own.

const broker = await BrokerProcess.start()
t.teardown(() => broker.stop())

t.test('GET /v1/schemas: the index by MQTT filter; each schema as its file, compilable by a client', async t => {
  const res = await fetch(`http://127.0.0.1:${broker.ports.ws}/v1/schemas`)
  t.equal(res.status, 200)
  t.match(res.headers.get('cache-control'), /max-age=/)
  const index = await res.json() as Record<string, string>
  t.equal(index['gerrit/#'], '/v1/schemas/gerrit.event')
  t.equal(index['firehose/bridges/+'], '/v1/schemas/firehose.bridge-status')
  const ajv = new Ajv2020({ strict: false })
  const ids = new Set(Object.values(index).map(path => path.slice('/v1/schemas/'.length)))
  // a client fetches what the Gerrit schema refers to as well
  for (const id of ['gerrit.common', 'history.envelope']) ids.add(id)
  const fetched = new Map<string, unknown>()
  for (const id of ids) {
    const one = await fetch(`http://127.0.0.1:${broker.ports.ws}/v1/schemas/${id}`)
    t.equal(one.status, 200, id)
    t.match(one.headers.get('content-type'), /^application\/schema\+json/)
    const schema = await one.json() as Record<string, unknown>
    t.same(schema, JSON.parse(await readFile(join(REPO, 'packages/schemas/schemas', `${id}.json`), 'utf8')), `${id}: as its file`)
    fetched.set(id, schema)
  }
  for (const schema of fetched.values()) ajv.addSchema(schema as object)
  const status = ajv.getSchema('urn:firehose:schema:firehose.bridge-status')!
  t.equal(status({ state: 'connected', since: '2026-11-26T09:00:00.000Z', lastEventAt: null, outboxDepth: 0 }), true)
  t.equal(status({ state: 'asleep', since: null, lastEventAt: null, outboxDepth: 0 }), false)
  const missing = await fetch(`http://127.0.0.1:${broker.ports.ws}/v1/schemas/nope`)
  t.equal(missing.status, 404)
  t.match(await missing.text(), /no schema "nope"/)
})

t.test('over https too', async t => {
  const { request } = await import('node:https')
  const body = await new Promise<string>((resolve, reject) => {
    request({ host: '127.0.0.1', port: broker.ports.wss, path: '/v1/schemas', ca: readFileSync(broker.certs.ca), servername: 'localhost' }, res => {
      let text = ''
      res.on('data', chunk => { text += String(chunk) })
      res.on('end', () => { resolve(text) })
    }).on('error', reject).end()
  })
  t.equal(JSON.parse(body)['gerrit/#'], '/v1/schemas/gerrit.event')
})

t.test('POST /v1/schemas/validate?topic=: a payload checked against its topic\'s schema', async t => {
  const check = async (topic: string, body: string): Promise<{ status: number, json: any }> => {
    const res = await fetch(`http://127.0.0.1:${broker.ports.ws}/v1/schemas/validate?topic=${encodeURIComponent(topic)}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body })
    return { status: res.status, json: await res.json().catch(() => undefined) }
  }
  t.same(await check('firehose/bridges/gerrit', JSON.stringify({ state: 'connected', since: '2026-11-26T09:00:00.000Z', lastEventAt: null, outboxDepth: 0 })), { status: 200, json: { valid: true, schema: '/v1/schemas/firehose.bridge-status' } })
  const bad = await check('firehose/bridges/gerrit', JSON.stringify({ state: 'asleep' }))
  t.equal(bad.json.valid, false)
  t.match(bad.json.errors.join('\n'), /\/state/, 'the error names the field')
  t.same(await check('somewhere/else', 'anything'), { status: 200, json: { valid: null } }, 'no schema for the topic')
  t.equal((await check('', 'x')).status, 400)
})
