import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import { Webhook } from 'standardwebhooks'
import { BrokerProcess } from './helpers/broker-process.js'
import { httpApi, type ApiAnswer } from './helpers/http-api.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { freePort } from './helpers/ports.js'
import { FIREHOSE_BIN, REPO } from './helpers/repo.js'
import { sleep, waitFor } from './helpers/wait.js'

// Push subscriptions on a real broker: events published with mosquitto_pub are POSTed to real
// receivers — examples/push_receiver.py (Debian's python3, PyJWT) and a Node server here (jose,
// standardwebhooks) — each verifying the JWT against the broker's JWKS and the Standard Webhooks
// signature. The receiver is killed and comes back; it answers 500, 410 and 400.

const USERS = { gerrit: 'gerrit-secret', alice: 'alice-secret' }
const broker = await BrokerProcess.start({
  users: USERS,
  acl: 'user gerrit\ntopic readwrite gerrit/#\n\nuser alice\ntopic read gerrit/#\n',
  config: {
    journal: { topics: ['#'] },
    // short retries, so that a receiver down for a few seconds is waited out within the test
    subscriptions: { push: { allowedEndpoints: ['http://127.0.0.1:*'], retrySchedule: ['300ms', '600ms', '1s', '1s', '1s', '1s', '1s', '1s', '1s', '1s'], timeout: '2s' } }
  }
})
t.teardown(() => broker.stop())
const base = `http://127.0.0.1:${broker.ports.ws}`

/** The API as alice. */
const api = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => await httpApi(() => base, USERS)('alice', method, path, body)

async function publish (topic: string, lines: string[]): Promise<void> {
  const { code, stderr } = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', topic, '-l'], lines.join('\n') + '\n')
  if (code !== 0) throw new Error(`mosquitto_pub: ${stderr}`)
}

/** examples/push_receiver.py, on a port of its own, appending what it verified to a file. */
async function startPythonReceiver (port: number, audience: string, secret: string, log: string): Promise<ChildProcess> {
  const child = spawn('/usr/bin/python3', [join(REPO, 'examples/push_receiver.py'), '--port', String(port), '--jwks', `${base}/.well-known/jwks.json`, '--audience', audience, '--secret', secret, '--log', log], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', d => { stderr += String(d) })
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', d => { if (String(d).includes('listening')) resolve() })
    child.on('exit', code => reject(new Error(`push_receiver.py exited ${code}: ${stderr}`)))
  })
  return child
}

const loggedSeqs = async (log: string): Promise<number[]> => {
  const text = await readFile(log, 'utf8').catch(() => '')
  // whole lines only: the receiver may be writing the last one as it is read
  const lines = text.split('\n')
  lines.pop()
  return lines.filter(Boolean).map(line => {
    const record = JSON.parse(line) as { body: { message: { data: string } } }
    return (JSON.parse(Buffer.from(record.body.message.data, 'base64').toString()) as { seq: number }).seq
  })
}

t.test('the Python example receiver verifies every push; the receiver killed and back, the broker SIGKILLed mid-stream: every event arrives', async t => {
  const port = await freePort()
  const endpoint = `http://127.0.0.1:${port}/hook`
  // made with the command line, as an operator would
  const made = await promisify(execFile)(process.execPath, [FIREHOSE_BIN, 'subscriptions', 'mk-push', 'py', endpoint, '--topic', 'gerrit/#', '--ack-deadline', '3'], { env: { ...process.env, FIREHOSE_URL: base, FIREHOSE_USER: 'alice', FIREHOSE_PASSWORD: USERS.alice } })
  const created = JSON.parse(made.stdout) as { secret: string }
  t.match(created, { name: 'py', type: 'push', push: { endpoint, audience: endpoint, format: 'pubsub' }, state: 'active', secret: /^whsec_[A-Za-z0-9+/=]{32}$/ })
  t.notOk('secret' in (await api('GET', '/v1/subscriptions/py')).json, 'the secret is shown once, at creation')
  const log = join(broker.dir, 'py-events.jsonl')
  let receiver = await startPythonReceiver(port, endpoint, created.secret, log)
  t.teardown(() => { receiver.kill() })
  const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i)
  const unique = async (): Promise<number> => new Set(await loggedSeqs(log)).size

  await publish('gerrit/change-merged', range(0, 30).map(seq => JSON.stringify({ seq })))
  await waitFor('30 events verified and logged by the receiver', async () => await unique() >= 30, 20_000)
  receiver.kill('SIGKILL')
  await publish('gerrit/change-merged', range(30, 20).map(seq => JSON.stringify({ seq })))
  await sleep(1500) // a few attempts fail meanwhile
  receiver = await startPythonReceiver(port, endpoint, created.secret, log)
  await waitFor('all 50 verified and logged', async () => await unique() >= 50, 30_000)
  await sleep(300)
  t.same((await loggedSeqs(log)).sort((a, b) => a - b), range(0, 50), 'every event arrived, verified, once (nothing was answered 2xx twice)')
  const view = (await api('GET', '/v1/subscriptions/py')).json
  t.match(view, { outstanding: 0, deadLetters: 0, counters: { pushOk: 50 } })
  t.ok(view.counters.pushFailed > 0, `failed attempts while the receiver was down: ${view.counters.pushFailed as number}`)
  t.equal(await broker.metric('firehose_subscription_push_ok_total', '{subscription="py"}'), 50)
  t.equal(await broker.metric('firehose_subscription_push_pending', '{subscription="py"}'), 0)

  // the broker killed while it pushes 1,000 more
  await publish('gerrit/change-merged', range(50, 1000).map(seq => JSON.stringify({ seq })))
  await waitFor('pushing under way', async () => await unique() >= 150, 30_000, 10)
  await broker.signal('SIGKILL')
  await broker.launch()
  await waitFor('all 1,050 verified and logged after the restart', async () => await unique() >= 1050, 60_000)
  await sleep(300)
  const seqs = await loggedSeqs(log)
  t.same([...new Set(seqs)].sort((a, b) => a - b), range(0, 1050), 'every event arrived')
  const duplicates = seqs.length - 1050
  t.comment(`duplicates after the broker's SIGKILL: ${duplicates} (POSTs in flight, or answered and not yet acked, when it died)`)
  t.ok(duplicates <= 8, `at most twice subscriptions.push.concurrency (4): POSTs in flight, and answered ones not yet acked: ${duplicates}`)
  await api('DELETE', '/v1/subscriptions/py')
})

interface Received { body: any, headers: IncomingMessage['headers'] }

/** A Node receiver: verifies JWT (via the broker's JWKS) and webhook signature, then answers as `answer` says. */
async function nodeReceiver (secret: () => string, audience: () => string, answer: (received: Received, n: number) => number): Promise<{ server: Server, port: number, verified: Received[], refused: string[] }> {
  const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`))
  const verified: Received[] = []
  const refused: string[] = []
  let n = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c as Buffer))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString()
      const verify = async (): Promise<void> => {
        try {
          const token = String(req.headers.authorization).replace(/^Bearer /, '')
          const { payload, protectedHeader } = await jwtVerify(token, jwks, { audience: audience(), issuer: 'firehose' })
          if (protectedHeader.kid === undefined || payload.exp === undefined || payload.iat === undefined) throw new Error('kid, exp and iat are expected')
          new Webhook(secret()).verify(body, req.headers as Record<string, string>)
        } catch (err) {
          refused.push((err as Error).message)
          res.writeHead(401).end()
          return
        }
        const received = { body: JSON.parse(body), headers: req.headers }
        const status = answer(received, n++)
        if (status < 300) verified.push(received)
        res.writeHead(status).end()
      }
      verify().catch((err: unknown) => { refused.push(String(err)) })
    })
  })
  const port = await freePort()
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  return { server, port, verified, refused }
}

t.test('ordered: 500s retried in order; webhook-id stable across retries; cloudevents format', async t => {
  let secret = ''
  let endpoint = ''
  const receiver = await nodeReceiver(() => secret, () => endpoint, (_r, n) => n % 3 === 1 ? 500 : 200)
  endpoint = `http://127.0.0.1:${receiver.port}/ordered`
  const created = await api('POST', '/v1/subscriptions', { name: 'ordered', topics: ['gerrit/patchset-created'], type: 'push', ordered: true, push: { endpoint, format: 'cloudevents' } })
  t.equal(created.status, 201, created.text)
  secret = created.json.secret
  await publish('gerrit/patchset-created', Array.from({ length: 12 }, (_, i) => JSON.stringify({ seq: i })))
  await waitFor('12 events acked', () => receiver.verified.length >= 12, 30_000)
  t.same(receiver.verified.map(r => r.body.data.seq), Array.from({ length: 12 }, (_, i) => i), 'in journal order, each once, whatever failed on the way')
  t.match(receiver.verified[0]!.body, { specversion: '1.0', type: 'gerrit/patchset-created', datacontenttype: 'application/json', source: 'firehose/subscriptions/ordered' })
  t.equal(receiver.verified[0]!.headers['content-type'], 'application/cloudevents+json')
  t.same(receiver.refused, [], 'every request verified')
  const view = (await api('GET', '/v1/subscriptions/ordered')).json
  t.ok(view.counters.pushFailed >= 4, `500s retried: ${view.counters.pushFailed as number}`)
})

t.test('410 Gone disables the subscription (and enable resumes it); another 4xx dead-letters the event', async t => {
  let secret = ''
  let endpoint = ''
  let mode: 'gone' | 'ok' | 'bad-request' = 'gone'
  const receiver = await nodeReceiver(() => secret, () => endpoint, () => mode === 'gone' ? 410 : mode === 'bad-request' ? 400 : 204)
  endpoint = `http://127.0.0.1:${receiver.port}/gone`
  const created = await api('POST', '/v1/subscriptions', { name: 'gone', topics: ['gerrit/ref-updated'], type: 'push', push: { endpoint } })
  secret = created.json.secret
  await publish('gerrit/ref-updated', ['{"n":1}'])
  await waitFor('the subscription disabled', async () => (await api('GET', '/v1/subscriptions/gone')).json.state === 'disabled', 20_000)
  t.match((await api('GET', '/v1/subscriptions/gone')).json, { state: 'disabled', disabledReason: /HTTP 410/ })
  await publish('gerrit/ref-updated', ['{"n":2}'])
  await sleep(1000)
  t.same(receiver.verified, [], 'nothing pushed while disabled')
  mode = 'ok'
  t.match((await api('POST', '/v1/subscriptions/gone/enable')).json, { state: 'active' })
  await waitFor('both events delivered after enable', () => receiver.verified.length >= 2, 20_000)
  // not ordered: the two may go out in parallel, in either order
  t.same(receiver.verified.map(r => JSON.parse(Buffer.from(r.body.message.data, 'base64').toString()) as { n: number }).sort((a, b) => a.n - b.n), [{ n: 1 }, { n: 2 }])
  mode = 'bad-request'
  await publish('gerrit/ref-updated', ['{"n":3}'])
  await waitFor('a dead letter', async () => (await api('GET', '/v1/subscriptions/gone')).json.deadLetters === 1, 20_000)
  t.match((await api('GET', '/v1/subscriptions/gone/dead-letters')).json.deadLetters, [{ reason: /HTTP 400/, deliveries: 1, event: { payload: { n: 3 } } }])
})

t.test('a slow receiver: at most subscriptions.push.concurrency POSTs at once, and MQTT subscribers do not wait for it', async t => {
  let secret = ''
  let endpoint = ''
  let open = 0
  let most = 0
  const receiver = await nodeReceiver(() => secret, () => endpoint, () => 204)
  // every answer 300 ms late: count the requests open at once
  receiver.server.prependListener('request', (_req, res) => {
    open++
    most = Math.max(most, open)
    const writeHead = res.writeHead.bind(res)
    const end = res.end.bind(res)
    res.writeHead = ((...args: Parameters<typeof res.writeHead>) => {
      setTimeout(() => {
        open--
        writeHead(...args)
        end()
      }, 300)
      return res
    }) as typeof res.writeHead
    res.end = (() => res) as typeof res.end
  })
  endpoint = `http://127.0.0.1:${receiver.port}/slow`
  const created = await api('POST', '/v1/subscriptions', { name: 'slow', topics: ['gerrit/slow'], type: 'push', push: { endpoint } })
  secret = created.json.secret
  const mqtt = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'gerrit/slow', '-u', 'alice', '-P', USERS.alice, '-q', '1'])
  t.teardown(() => { mqtt.stop() })
  await sleep(500)
  const started = Date.now()
  await publish('gerrit/slow', Array.from({ length: 20 }, (_, i) => JSON.stringify({ i })))
  await mqtt.waitForLines(20)
  const mqttMs = Date.now() - started
  await waitFor('20 slow pushes acked', async () => (await api('GET', '/v1/subscriptions/slow')).json.counters.pushOk >= 20, 30_000)
  const pushMs = Date.now() - started
  t.equal((await api('GET', '/v1/subscriptions/slow')).json.counters.pushFailed, 0, 'slow, not failed: nothing timed out')
  t.ok(most <= 4, `at most 4 POSTs open at once: ${most}`)
  t.ok(mqttMs < pushMs / 2, `the MQTT subscriber had all 20 after ${mqttMs} ms, the slow receiver after ${pushMs} ms`)
  await api('DELETE', '/v1/subscriptions/slow')
})

t.test('refusals: an endpoint outside allowedEndpoints, a push without endpoint, pulling a push subscription', async t => {
  const outside = await api('POST', '/v1/subscriptions', { name: 'x', topics: ['gerrit/#'], type: 'push', push: { endpoint: 'http://example.org/hook' } })
  t.equal(outside.status, 400)
  t.match(outside.text, /^push\.endpoint: http:\/\/example\.org\/hook is not allowed here \(subscriptions\.push\.allowedEndpoints: http:\/\/127\.0\.0\.1:\*\)/)
  const userinfo = await api('POST', '/v1/subscriptions', { name: 'x', topics: ['gerrit/#'], type: 'push', push: { endpoint: 'http://user:pw@127.0.0.1:1/hook' } })
  t.match(userinfo.text, /^push\.endpoint: a URL with a user or password in it is not taken/)
  t.match((await api('POST', '/v1/subscriptions', { name: 'x', topics: ['gerrit/#'], type: 'push' })).text, /^push: a push subscription needs \{ "endpoint": URL \}/)
  const pullOnPush = await api('POST', '/v1/subscriptions/gone/pull', {})
  t.equal(pullOnPush.status, 400)
  t.match(pullOnPush.text, /"gone" is a push subscription: the broker delivers it/)
  t.same((await api('GET', '/v1/subscriptions')).json.subscriptions.map((s: { name: string }) => s.name), ['gone', 'ordered'], 'nothing half-created')
  const jwks = await (await fetch(`${base}/.well-known/jwks.json`)).json() as { keys: Array<Record<string, unknown>> }
  t.match(jwks.keys, [{ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: /\S+/ }])
  t.notOk('d' in jwks.keys[0]!, 'no private part published')
})
