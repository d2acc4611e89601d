import { createServer } from 'node:http'
import { Redis } from 'ioredis'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import t from 'tap'
import { WebSocket } from 'ws'
import { BrokerProcess } from './helpers/broker-process.js'
import { httpApi, type ApiAnswer } from './helpers/http-api.js'
import { run } from './helpers/mosquitto.js'
import { freePort } from './helpers/ports.js'
import { RedisServer } from './helpers/redis.js'
import { sleep, waitFor } from './helpers/wait.js'

// Subscriptions on a cluster: two broker processes on Debian's redis-server. A subscription
// made on one node is pulled, acked and read as a stream on the other; the node pushing a
// subscription is SIGKILLed mid-stream and the other takes over, to a real HTTP receiver that
// verifies every JWT against the surviving node's JWKS.

const USERS = { gerrit: 'gerrit-secret', alice: 'alice-secret' }
const ACL = 'user gerrit\ntopic readwrite gerrit/#\n\nuser alice\ntopic read gerrit/#\n'
const CONCURRENCY = 4
const redis = await RedisServer.start(await freePort())
const nodeConfig = (name: string): Record<string, unknown> => ({
  persistence: undefined,
  cluster: { redis: redis.url, node: name, heartbeatInterval: 1 },
  journal: { topics: ['#'] },
  subscriptions: { push: { allowedEndpoints: ['http://127.0.0.1:*'], retrySchedule: ['300ms', '1s'], timeout: '2s', concurrency: CONCURRENCY } }
})
const [a, b] = await Promise.all(['a', 'b'].map(async n => await BrokerProcess.start({ users: USERS, acl: ACL, config: nodeConfig(`node-${n}`) }))) as [BrokerProcess, BrokerProcess]
const db = new Redis(redis.url)
t.teardown(async () => {
  db.disconnect()
  await Promise.all([a, b].map(async node => await node.stop()))
  await redis.destroy()
})
const base = (node: BrokerProcess): string => `http://127.0.0.1:${node.ports.ws}`

/** The API as alice, on one node or the other. */
const api = async (node: BrokerProcess, method: string, path: string, body?: unknown): Promise<ApiAnswer> => await httpApi(() => base(node), USERS)('alice', method, path, body)

async function publish (node: BrokerProcess, topic: string, seqs: number[]): Promise<void> {
  const { code, stderr } = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(node.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', topic, '-l'], seqs.map(seq => JSON.stringify({ seq })).join('\n') + '\n')
  if (code !== 0) throw new Error(`mosquitto_pub: ${stderr}`)
}
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i)

t.test('a pull subscription made on A is pulled and acked on B; a stream made on B is read on A', async t => {
  const made = await api(a, 'POST', '/v1/subscriptions', { name: 'ci', topics: ['gerrit/#'], ackDeadline: 600 })
  t.equal(made.status, 201, 'created')
  await publish(a, 'gerrit/change-merged', range(0, 100))
  await publish(b, 'gerrit/change-merged', range(100, 100))
  const got: number[] = []
  for (let round = 0; got.length < 200 && round < 50; round++) {
    const pulled = await api(b, 'POST', '/v1/subscriptions/ci/pull', { max: 30, waitSeconds: 2 })
    t.equal(pulled.status, 200, `pull ${round}`)
    const items = pulled.json as Array<{ ackId: string, payload: { seq: number } }>
    got.push(...items.map(item => item.payload.seq))
    // acked alternately on either node
    const acked = await api(round % 2 === 0 ? a : b, 'POST', '/v1/subscriptions/ci/ack', { ackIds: items.map(item => item.ackId) })
    t.equal(acked.json.acked, items.length)
  }
  t.same(got.sort((x, y) => x - y), range(0, 200), 'every event, once, from both nodes\' publishers')
  t.match((await api(a, 'GET', '/v1/subscriptions/ci')).json, { outstanding: 0, deadLetters: 0 }, 'A sees what was acked on B')
  t.match((await api(b, 'GET', '/v1/subscriptions')).json, { subscriptions: [{ name: 'ci', owner: 'alice' }] })

  const stream = await api(b, 'POST', '/v1/subscriptions', { name: 'live', topics: ['gerrit/ref-updated'], type: 'stream' })
  t.equal(stream.status, 201, 'created')
  const id = String(stream.json.location).split('/event-stream/')[1]!
  const ws = new WebSocket(`ws://127.0.0.1:${a.ports.ws}/event-stream/${id}`)
  const messages: string[] = []
  ws.on('message', data => messages.push(String(data)))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  await publish(b, 'gerrit/ref-updated', [7])
  await waitFor('the event on A\'s stream', () => messages.length >= 1)
  t.match(JSON.parse(messages[0]!), { seq: 7 })
  const closed = new Promise<number>(resolve => ws.once('close', code => resolve(code)))
  t.equal((await api(b, 'DELETE', '/v1/subscriptions/live')).status, 204)
  t.equal(await closed, 1001, 'deleted on B: A closes its reader (within its next look at Redis)')
  await api(a, 'DELETE', '/v1/subscriptions/ci')
})

t.test('the node pushing a subscription is SIGKILLed mid-stream: the other takes over, nothing lost, duplicates counted', async t => {
  // verified against B's JWKS throughout, whichever node signs: the cluster's nodes share the key
  const jwks = createRemoteJWKSet(new URL(`${base(b)}/.well-known/jwks.json`))
  const received: number[] = []
  const refused: string[] = []
  let endpoint = ''
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c as Buffer))
    req.on('end', () => {
      const token = String(req.headers.authorization).replace(/^Bearer /, '')
      jwtVerify(token, jwks, { audience: endpoint, issuer: 'firehose' }).then(() => {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { message: { data: string } }
        received.push((JSON.parse(Buffer.from(body.message.data, 'base64').toString()) as { seq: number }).seq)
        res.writeHead(204).end()
      }, (err: Error) => {
        refused.push(err.message)
        res.writeHead(401).end()
      })
    })
  })
  const port = await freePort()
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  endpoint = `http://127.0.0.1:${port}/hook`
  const made = await api(a, 'POST', '/v1/subscriptions', { name: 'hook', topics: ['gerrit/#'], type: 'push', ackDeadline: 3, push: { endpoint } })
  t.equal(made.status, 201, 'created')
  // which node pushes it: the one holding its worker lock
  let holder = ''
  await waitFor('a node to take the push worker', async () => { holder = (await db.get('firehose:subscriptions:worker:hook')) ?? ''; return holder !== '' })
  const [pusher, survivor] = holder.startsWith('node-a') ? [a, b] : [b, a]
  t.comment(`pushed by ${holder}`)

  await publish(survivor, 'gerrit/change-merged', range(0, 1000))
  const unique = (): number => new Set(received).size
  await waitFor('pushing under way', () => unique() >= 150, 30_000, 10)
  await pusher.signal('SIGKILL')
  await publish(survivor, 'gerrit/change-merged', range(1000, 200))
  await waitFor('all 1,200 pushed after the takeover', () => unique() >= 1200, 60_000)
  await sleep(300)
  t.same([...new Set(received)].sort((x, y) => x - y), range(0, 1200), 'every event arrived')
  t.same(refused, [], 'every token verified against the surviving node\'s JWKS')
  const duplicates = received.length - 1200
  t.comment(`duplicates after the pushing node's SIGKILL: ${duplicates} (POSTs in flight, or answered and not yet acked, when it died)`)
  t.ok(duplicates <= 2 * CONCURRENCY, `at most twice subscriptions.push.concurrency (${CONCURRENCY}): ${duplicates}`)
  t.match(await db.get('firehose:subscriptions:worker:hook'), /^node-(a|b)/, 'the survivor holds the worker lock')
  t.not(await db.get('firehose:subscriptions:worker:hook'), holder)
  await pusher.launch()
  t.match((await api(pusher, 'GET', '/v1/subscriptions/hook')).json, { outstanding: 0, deadLetters: 0 }, 'the restarted node sees the subscription settled')
})

t.test('a failed push is retried on the retry schedule by whichever node pushes (not at its next look at Redis)', async t => {
  const attempts = new Map<number, number>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', c => chunks.push(c as Buffer))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { message: { data: string } }
      const seq = (JSON.parse(Buffer.from(body.message.data, 'base64').toString()) as { seq: number }).seq
      const n = (attempts.get(seq) ?? 0) + 1
      attempts.set(seq, n)
      // every event's first attempt fails: it comes back after the schedule's first step (300 ms)
      res.writeHead(n === 1 ? 503 : 204).end()
    })
  })
  const port = await freePort()
  await new Promise<void>(resolve => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const made = await api(a, 'POST', '/v1/subscriptions', { name: 'retried', topics: ['gerrit/retried'], type: 'push', push: { endpoint: `http://127.0.0.1:${port}/hook` } })
  t.equal(made.status, 201, 'created')
  await waitFor('a node to take the push worker', async () => (await db.get('firehose:subscriptions:worker:retried')) !== null)
  await publish(b, 'gerrit/retried', range(0, 20))
  // the worker sleeps at most 30 s between looks when nothing wakes it: 10 s tells the two apart
  await waitFor('every event pushed again after its 503', () => [...attempts.values()].filter(n => n >= 2).length === 20, 10_000)
  t.same([...attempts.keys()].sort((x, y) => x - y), range(0, 20))
  // the last 204 is received here before the node has recorded it: its ack lands a moment later
  const view = await waitFor('nothing outstanding', async () => {
    const json = (await api(a, 'GET', '/v1/subscriptions/retried')).json
    return json.outstanding === 0 ? json : undefined
  }, 5000)
  t.match(view, { outstanding: 0, deadLetters: 0 })
  await api(a, 'DELETE', '/v1/subscriptions/retried')
})
