import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { jwtVerify, importJWK } from 'jose'
import { loadSigningKeys, PushSender, SigningKeyError } from '../src/index.js'

const dir = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'firehose-keys-'))
const pem = (type: 'ed25519' | 'rsa' | 'ec'): string => {
  const { privateKey } = type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519')
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
}

t.test('no keys configured: the broker makes its own Ed25519 key once (mode 0600) and keeps it', async t => {
  const file = join(await dir(), 'push-signing-key.pem')
  const [first] = await loadSigningKeys([], file)
  t.match(first, { alg: 'EdDSA', publicJwk: { kty: 'OKP', crv: 'Ed25519' } })
  t.equal((await stat(file)).mode & 0o777, 0o600)
  const [again] = await loadSigningKeys([], file)
  t.equal(again!.kid, first!.kid, 'the same key after a restart')
  t.notOk('d' in first!.publicJwk, 'the published half has no private part')
})

t.test('configured keys: RSA and Ed25519, the first signs, all are published; bad files are named', async t => {
  const d = await dir()
  await writeFile(join(d, 'rsa.pem'), pem('rsa'))
  await writeFile(join(d, 'ed.pem'), pem('ed25519'))
  await writeFile(join(d, 'ec.pem'), pem('ec'))
  await writeFile(join(d, 'junk.pem'), 'not a key')
  const keys = await loadSigningKeys([{ file: join(d, 'rsa.pem'), kid: 'new' }, { file: join(d, 'ed.pem') }], join(d, 'unused.pem'))
  t.same(keys.map(k => [k.kid.length > 0, k.alg]), [[true, 'RS256'], [true, 'EdDSA']])
  t.equal(keys[0]!.kid, 'new')
  const sender = new PushSender({ issuer: 'firehose', keys, timeoutMs: 1000 })
  t.same(sender.jwks().keys.map(k => [k.kid, k.alg, k.use]), [['new', 'RS256', 'sig'], [keys[1]!.kid, 'EdDSA', 'sig']])
  await t.rejects(loadSigningKeys([{ file: join(d, 'ec.pem') }], ''), new SigningKeyError(0, `${join(d, 'ec.pem')} is a ec key; Ed25519 (EdDSA) or RSA (RS256) is needed`))
  await t.rejects(loadSigningKeys([{ file: join(d, 'ed.pem') }, { file: join(d, 'junk.pem') }], ''), { index: 1, message: /junk\.pem is not a PEM private key/ })
  await t.rejects(loadSigningKeys([{ file: join(d, 'missing.pem') }], ''), { index: 0, message: /cannot read .*missing\.pem/ })
})

t.test('a token signed by the sender verifies against its published key', async t => {
  const keys = await loadSigningKeys([], join(await dir(), 'k.pem'))
  const sender = new PushSender({ issuer: 'firehose', keys, timeoutMs: 1000 })
  // the sender signs inside send(); reach a receiver that only records the token
  const { createServer } = await import('node:http')
  let token = ''
  const server = createServer((req, res) => { token = String(req.headers.authorization).slice(7); res.writeHead(204).end() })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}/`
  const entry = { offset: 7, timestamp: 1_800_000_000_000, topic: 'gerrit/x', payload: Buffer.from('{"a":1}'), qos: 1 as const, retain: false, json: true }
  const outcome = await sender.send({ ackId: '7-1', delivery: 1, entry }, { name: 's', owner: 'alice', topics: ['#'], type: 'push', push: { endpoint, audience: 'aud-1', format: 'pubsub', secret: 'whsec_' + Buffer.alloc(24, 1).toString('base64') }, ackDeadlineMs: 60_000, maxDeliveries: 3, retentionMs: 1, ordered: false, created: 0 })
  t.same(outcome, { kind: 'ok' })
  const jwk = sender.jwks().keys[0]!
  const { payload, protectedHeader } = await jwtVerify(token, await importJWK(jwk, 'EdDSA'), { audience: 'aud-1', issuer: 'firehose' })
  t.match(payload, { subscription: 's', owner: 'alice' })
  t.equal(protectedHeader.kid, jwk.kid)
  t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 600)
})

t.test('the Pub/Sub envelope is the documented JSON, whatever the topic holds', async t => {
  const keys = await loadSigningKeys([], join(await dir(), 'k.pem'))
  const sender = new PushSender({ issuer: 'firehose', keys, timeoutMs: 1000 })
  t.teardown(() => { sender.close() })
  const { createServer } = await import('node:http')
  const bodies: string[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c as Buffer))
    req.on('end', () => { bodies.push(Buffer.concat(chunks).toString()); res.writeHead(204).end() })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}/`
  const topic = 'gerrit/"quoted"\\back/é✓/\u0001'
  const entry = { offset: 42, timestamp: 1_800_000_000_123, topic, payload: Buffer.from([0, 255, 10, 34]), qos: 1 as const, retain: false }
  await sender.send({ ackId: '42-1', delivery: 1, entry }, { name: 'sub.one', owner: 'alice', topics: ['#'], type: 'push', push: { endpoint, audience: endpoint, format: 'pubsub', secret: 'whsec_' + Buffer.alloc(24, 1).toString('base64') }, ackDeadlineMs: 60_000, maxDeliveries: 3, retentionMs: 1, ordered: false, created: 0 })
  const time = new Date(1_800_000_000_123).toISOString()
  t.same(JSON.parse(bodies[0]!), {
    message: { attributes: { 'event-type': topic, topic, offset: '42' }, data: Buffer.from([0, 255, 10, 34]).toString('base64'), messageId: '42', message_id: '42', publishTime: time, publish_time: time },
    subscription: 'sub.one'
  })
})
