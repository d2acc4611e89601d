import { execFile, spawn } from 'node:child_process'
import { connect as tcpConnect } from 'node:net'
import { promisify } from 'node:util'
import t from 'tap'
import { WebSocket } from 'ws'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { run } from './helpers/mosquitto.js'
import { FIREHOSE_BIN } from './helpers/repo.js'
import { USERS } from './helpers/policy.js'
import { sleep, waitFor } from './helpers/wait.js'

// The journal, read back over HTTP from the broker's WebSocket port: the history page and
// Server-Sent Events (Node's fetch, and curl -N), from an offset, a timestamp, a date with and
// without zone, after a Last-Event-ID; history then live with no gap and no duplicate at the
// seam while a publisher runs at full speed; the ACL; bad input.

const broker = await BrokerProcess.start({
  users: USERS,
  // anonymous readers: gerrit/ only; launchpad may also read secret/
  acl: 'topic read gerrit/#\ntopic read $SYS/#\n\nuser gerrit\ntopic readwrite gerrit/#\n\nuser launchpad\ntopic readwrite launchpad/#\ntopic readwrite secret/#\n',
  // a stream outlives the handshake timeout of connections that never speak MQTT
  config: { journal: { topics: ['#'] }, limits: { connectTimeout: 1, maxStreamsPerIp: 5, maxQueuedBytes: 262144 } }
})
t.teardown(() => broker.stop())
const base = `http://127.0.0.1:${broker.ports.ws}`
const auth = (user: keyof typeof USERS): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${USERS[user]}`).toString('base64')}` })

interface Envelope { offset: number, timestamp: number, topic: string, payload?: unknown, payloadBase64?: string, user?: string }

async function page (path: string, headers: Record<string, string> = {}): Promise<{ events: Envelope[], next: string | null }> {
  const res = await fetch(base + path, { headers })
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`)
  return await res.json() as { events: Envelope[], next: string | null }
}

/** Reads an SSE stream until `until` says so, with the event ids and the comments seen. */
async function sse (path: string, until: (events: Envelope[]) => boolean, headers: Record<string, string> = {}): Promise<{ events: Envelope[], ids: string[], comments: string[], response: Response }> {
  const controller = new AbortController()
  const response = await fetch(base + path, { headers, signal: controller.signal })
  const events: Envelope[] = []
  const ids: string[] = []
  const comments: string[] = []
  let buffer = ''
  const decoder = new TextDecoder()
  try {
    for await (const chunk of response.body!) {
      buffer += decoder.decode(chunk as Uint8Array, { stream: true })
      let end: number
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) comments.push(line.slice(1).trim())
          else if (line.startsWith('id: ')) ids.push(line.slice(4))
          else if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as Envelope)
        }
      }
      if (until(events)) break
    }
  } finally {
    controller.abort()
  }
  return { events, ids, comments, response }
}

async function publish (topic: string, messages: string[], user: keyof typeof USERS = 'gerrit'): Promise<void> {
  const pub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: user, password: USERS[user] })
  for (const m of messages) await pub.publishAsync(topic, m, { qos: 1 })
  await pub.endAsync()
}

t.test('the history page: what mosquitto_pub published, with offsets, timestamps and payloads as JSON, text or base64', async t => {
  const before = Date.now()
  const { code } = await run('mosquitto_pub', ['-p', String(broker.ports.mqtt), '-u', 'gerrit', '-P', USERS.gerrit, '-q', '1', '-t', 'gerrit/page/a', '-m', '{"change":1}'])
  t.equal(code, 0)
  await publish('gerrit/page/b', ['plain text'])
  const pub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  await pub.publishAsync('gerrit/page/c', Buffer.from([0xff, 0x00, 0xfe]), { qos: 1 })
  await pub.endAsync()
  const { events, next } = await page('/v1/history?topic=gerrit/page/%23')
  t.same(events.map(e => [e.topic, e.payload ?? e.payloadBase64]), [['gerrit/page/a', { change: 1 }], ['gerrit/page/b', 'plain text'], ['gerrit/page/c', '/wD+']])
  t.ok(events.every((e, i) => i === 0 || e.offset > events[i - 1]!.offset), 'offsets increase')
  t.ok(events.every(e => e.timestamp >= before - 1000 && e.timestamp <= Date.now()), 'timestamps are the broker\'s clock')
  t.equal(next, null, 'one page holds them all')
  t.equal(events[0]!.user, undefined, 'anonymous readers do not see who published')
  const mine = await page('/v1/history?topic=gerrit/page/%23', auth('gerrit'))
  t.equal(mine.events[0]!.user, 'gerrit', 'an authenticated reader does')

  const paged = await page('/v1/history?topic=gerrit/page/%23&limit=2')
  t.equal(paged.events.length, 2)
  t.match(paged.next, /^\/v1\/history\?/)
  const rest = await page(paged.next!)
  t.same(rest.events.map(e => e.topic), ['gerrit/page/c'], 'next is the following page')
})

t.test('SSE from an offset, a timestamp, dates with and without zone, and after Last-Event-ID', async t => {
  await publish('gerrit/start', ['s0', 's1', 's2', 's3'])
  const all = (await page('/v1/history?topic=gerrit/start')).events
  t.equal(all.length, 4)
  const [, second, third] = all as [Envelope, Envelope, Envelope, Envelope]
  const payloads = (events: Envelope[]): unknown[] => events.map(e => e.payload)

  const byOffset = await sse(`/v1/events?topic=gerrit/start&since=${second.offset}`, e => e.length >= 3)
  t.same(payloads(byOffset.events), ['s1', 's2', 's3'], 'from an offset, inclusive')
  t.same(byOffset.ids, byOffset.events.map(e => String(e.offset)), 'each event id is its offset')
  t.equal(byOffset.response.headers.get('content-type'), 'text/event-stream; charset=utf-8')

  const byTimestamp = await sse(`/v1/events?topic=gerrit/start&since=${third.timestamp}`, e => e.length >= 1)
  t.equal(byTimestamp.events[0]!.timestamp >= third.timestamp, true, 'from a ms timestamp: nothing older')
  const iso = new Date(third.timestamp).toISOString()
  const byDate = await sse(`/v1/events?topic=gerrit/start&since=${encodeURIComponent(iso)}`, e => e.length >= 1)
  t.same(byDate.events[0], byTimestamp.events[0], 'a date with zone (Z) starts where its timestamp does')
  const noZone = iso.replace('Z', '')
  const byLocal = await sse(`/v1/events?topic=gerrit/start&since=${encodeURIComponent(noZone)}`, e => e.length >= 1)
  t.same(byLocal.events[0], byTimestamp.events[0], 'a date without zone is UTC')
  const plus = new Date(third.timestamp + 3_600_000).toISOString().replace('Z', '+01:00')
  const byOffsetZone = await sse(`/v1/events?topic=gerrit/start&since=${encodeURIComponent(plus)}`, e => e.length >= 1)
  t.same(byOffsetZone.events[0], byTimestamp.events[0], 'a date with +01:00 is that much ahead of UTC')

  const resumed = await sse('/v1/events?topic=gerrit/start', e => e.length >= 2, { 'last-event-id': String(second.offset) })
  t.same(payloads(resumed.events), ['s2', 's3'], 'Last-Event-ID resumes after it')

  const curl = spawn('curl', ['-sN', `${base}/v1/events?topic=gerrit/start&since=${third.offset}`])
  let out = ''
  curl.stdout.on('data', chunk => { out += String(chunk) })
  await waitFor('curl to print two events', () => (out.match(/^data: /gm) ?? []).length >= 2, 10000)
  curl.kill()
  t.match(out, new RegExp(`id: ${third.offset}\\nevent: message\\ndata: \\{"offset":${third.offset},`), 'curl -N reads the same stream')
})

t.test('no start: only new events; history then live at full speed, with no gap and no duplicate at the seam', async t => {
  const only = sse('/v1/events?topic=gerrit/seam-new', e => e.length >= 1)
  await sleep(300)
  await publish('gerrit/seam-new', ['new'])
  t.same((await only).events.map(e => e.payload), ['new'], 'nothing before the request')

  await publish('gerrit/seam', Array.from({ length: 200 }, (_, i) => String(i)))
  const first = (await page('/v1/history?topic=gerrit/seam&limit=1')).events[0]!
  const pub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  let n = 200
  const state = { running: true }
  const publishing = (async () => {
    while (state.running) await Promise.all(Array.from({ length: 20 }, async () => await pub.publishAsync('gerrit/seam', String(n++), { qos: 1 })))
  })()
  const reading = sse(`/v1/events?topic=gerrit/seam&since=${first.offset}`, e => e.length >= 3000)
  await waitFor('3,000 published', () => n >= 3000, 60000)
  state.running = false
  await publishing
  await pub.endAsync()
  const { events } = await reading
  const numbers = events.map(e => Number(e.payload))
  t.same(numbers, Array.from({ length: numbers.length }, (_, i) => i), `${numbers.length} events, each once, in order, across the seam`)
  t.ok(events.every((e, i) => i === 0 || e.offset > events[i - 1]!.offset), 'offsets increase')
})

t.test('the ACL decides: a filter the reader may not read is refused with 403; a user may read more', async t => {
  const anonymous = await fetch(`${base}/v1/history?topic=secret/%23`)
  t.equal(anonymous.status, 403)
  t.match(await anonymous.text(), /topic: "secret\/#" may not be read by anonymous readers/)
  const refused = await fetch(`${base}/v1/events?topic=secret/%23`)
  t.equal(refused.status, 403, 'SSE too')
  await publish('secret/x', ['hidden'], 'launchpad')
  const theirs = await page('/v1/history?topic=secret/%23', auth('launchpad'))
  t.same(theirs.events.map(e => e.payload), ['hidden'], 'launchpad may read secret/#')
  // as for an MQTT subscriber: `#` overlaps what anonymous may read, so it is allowed, and each event is checked
  const everything = await page('/v1/history?topic=%23&limit=1000')
  t.ok(everything.events.length > 0 && everything.events.every(e => e.topic.startsWith('gerrit/')), 'anonymous on # gets gerrit/ events only, not secret/x')
  const wrong = await fetch(`${base}/v1/history?topic=gerrit/%23`, { headers: { authorization: `Basic ${Buffer.from('gerrit:wrong').toString('base64')}` } })
  t.equal(wrong.status, 401, 'wrong credentials are refused, not taken as anonymous')
  t.equal(wrong.headers.get('www-authenticate'), 'Basic realm="firehose"')
})

t.test('bad input: each refused with its status and a message naming the parameter; the broker keeps serving', async t => {
  const cases: Array<[string, Record<string, string>, number, RegExp]> = [
    ['/v1/history', {}, 400, /^topic: at least one MQTT topic filter is needed/],
    ['/v1/history?topic=a/%23/b', {}, 400, /^topic: "a\/#\/b" is not an MQTT topic filter/],
    ['/v1/history?topic=gerrit/%23&since=yesterday-ish', {}, 400, /^since: "yesterday-ish" is not an offset, a ms timestamp or an ISO 8601 date/],
    ['/v1/history?topic=gerrit/%23&until=2026-13-45', {}, 400, /^until: "2026-13-45" is not an offset/],
    ['/v1/history?topic=gerrit/%23&limit=0', {}, 400, /^limit: "0" is not a whole number from 1 to 1000/],
    ['/v1/history?topic=gerrit/%23&limit=lots', {}, 400, /^limit: "lots"/],
    ['/v1/events?topic=gerrit/%23', { 'last-event-id': 'abc' }, 400, /^Last-Event-ID: "abc" is not an offset/],
    ['/v1/events?topic=gerrit/%23', { authorization: 'Bearer xyz' }, 401, /^Authorization: expected HTTP Basic/],
    ['/nowhere', {}, 426, /connect with an MQTT client over WebSocket/]
  ]
  for (const [path, headers, status, message] of cases) {
    const res = await fetch(base + path, { headers })
    t.equal(res.status, status, `${path} ${JSON.stringify(headers)}`)
    t.match(await res.text(), message)
  }
  t.ok(await broker.metric('firehose_history_requests_refused_total') >= 8, 'counted')
  t.equal((await fetch(`${base}/v1/history?topic=gerrit/start`)).status, 200, 'still serving')
})

t.test('/v1/journal and /metrics show where the journal stands', async t => {
  const journal = await (await fetch(`${base}/v1/journal`)).json() as { first: number, last: number, bytes: number, appends: number }
  t.ok(journal.last >= journal.first && journal.bytes > 0 && journal.appends > 0, JSON.stringify(journal))
  t.equal(await broker.metric('firehose_journal_last_offset'), journal.last)
  t.ok(await broker.metric('firehose_journal_appends_total') >= journal.appends)
  t.equal(await broker.metric('firehose_journal_first_offset'), journal.first)
})

/** Opens a WebSocket stream; resolves with the messages once `count` arrived, or rejects with the HTTP refusal. */
async function wsStream (path: string, count: number, headers: Record<string, string> = {}, protocols?: string[]): Promise<Array<Record<string, unknown>>> {
  const ws = new WebSocket(`ws://127.0.0.1:${broker.ports.ws}${path}`, protocols, { headers })
  return await new Promise((resolve, reject) => {
    const got: Array<Record<string, unknown>> = []
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', chunk => { body += String(chunk) })
      res.on('end', () => reject(new Error(`${res.statusCode} ${body.trim()}`)))
    })
    ws.on('error', reject)
    ws.on('message', data => {
      got.push(JSON.parse(String(data)) as Record<string, unknown>)
      if (got.length === count) {
        ws.close()
        resolve(got)
      }
    })
  })
}

t.test('WebSocket stream: start by X-StreamOffsetFrom* headers or parameters; the event object with ess_offset and ess_timestamp', async t => {
  await publish('gerrit/ws', ['{"type":"comment-added","n":1}', 'not json', '{"type":"ref-updated","n":2}'])
  const all = (await page('/v1/history?topic=gerrit/ws')).events
  const [first, second] = all as [Envelope, Envelope, Envelope]

  const byHeader = await wsStream('/v1/stream?topic=gerrit/ws', 3, { 'X-StreamOffsetFromOrdinal': String(first.offset) })
  t.same(byHeader[0], { type: 'comment-added', n: 1, ess_offset: first.offset, ess_timestamp: first.timestamp }, 'the original object, two keys added')
  t.same(byHeader[1], { topic: 'gerrit/ws', payload: 'not json', ess_offset: second.offset, ess_timestamp: second.timestamp }, 'a non-JSON payload wrapped')
  const byParameter = await wsStream(`/v1/stream?topic=gerrit/ws&X-StreamOffsetFromOrdinal=${second.offset}`, 2)
  t.same(byParameter.map(m => m.ess_offset), [second.offset, second.offset + 1], 'the same as a query parameter (browsers)')
  const byTime = await wsStream(`/v1/stream?topic=gerrit/ws&X-StreamOffsetFromTimestamp=${second.timestamp}`, 1)
  t.ok((byTime[0]!.ess_timestamp as number) >= second.timestamp)
  const byDate = await wsStream('/v1/stream?topic=gerrit/ws', 1, { 'X-StreamOffsetFromDatetime': new Date(second.timestamp).toISOString().replace('Z', '') })
  t.same(byDate[0], byTime[0], 'a datetime without zone is UTC')

  const live = wsStream('/v1/stream?topic=gerrit/ws-live', 1)
  await sleep(1500) // past the connect timeout: the stream stays open
  await publish('gerrit/ws-live', ['{"live":true}'])
  t.same((await live).map(m => m.live), [true], 'no start: only new events, live')

  await t.rejects(wsStream('/v1/stream?topic=gerrit/ws', 1, { 'X-StreamOffsetFromOrdinal': 'first' }), /^400 X-StreamOffsetFromOrdinal: "first" is not an offset/)
  await t.rejects(wsStream('/v1/stream?topic=secret/%23', 1), /^403 topic: "secret\/#" may not be read by anonymous readers/)

  const mqtt = await connect(`ws://127.0.0.1:${broker.ports.ws}/v1/stream`, {})
  t.ok(mqtt.connected, 'an upgrade offering the mqtt subprotocol is MQTT, on /v1/stream too')
  await mqtt.endAsync()
})

t.test('an SSE stream outlives the connect timeout for connections that never speak MQTT', async t => {
  const reading = sse('/v1/events?topic=gerrit/slow', e => e.length >= 1)
  await sleep(2500)
  await publish('gerrit/slow', ['late'])
  t.same((await reading).events.map(e => e.payload), ['late'])
})

t.test('firehose history: pages of history, --since a date, --follow, refusals as exit codes', async t => {
  await publish('gerrit/cli', ['{"n":1}', '{"n":2}', '{"n":3}'])
  const cli = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await promisify(execFile)(process.execPath, [FIREHOSE_BIN, 'history', '--url', base, ...args], { env: { ...process.env, FIREHOSE_PASSWORD: USERS.gerrit } })
    .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (err: { code: number, stdout: string, stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }))
  const all = await cli('--topic', 'gerrit/cli')
  t.equal(all.code, 0, all.stderr)
  const lines = all.stdout.trim().split('\n').map(l => JSON.parse(l) as Envelope)
  t.same(lines.map(l => l.payload), [{ n: 1 }, { n: 2 }, { n: 3 }], 'one JSON envelope per line')
  const since = await cli('--topic', 'gerrit/cli', '--since', new Date(lines[1]!.timestamp).toISOString().replace('Z', ''))
  t.same(since.stdout.trim().split('\n').map(l => (JSON.parse(l) as Envelope).offset), lines.filter(l => l.timestamp >= lines[1]!.timestamp).map(l => l.offset), '--since a date without zone (UTC)')
  const audit = await cli('--topic', 'gerrit/cli', '--user', 'gerrit')
  t.equal((JSON.parse(audit.stdout.split('\n')[0]!) as Envelope).user, 'gerrit', '--user reads as a broker user (password from FIREHOSE_PASSWORD)')

  const bad = await cli('--since', 'yesterday-ish')
  t.equal(bad.code, 2)
  t.match(bad.stderr, /firehose history: 400: since: "yesterday-ish" is not an offset/)
  const forbidden = await cli('--topic', 'secret/#')
  t.equal(forbidden.code, 2)
  t.match(forbidden.stderr, /403: topic: "secret\/#" may not be read/)
  const nowhere = await promisify(execFile)(process.execPath, [FIREHOSE_BIN, 'history', '--url', 'http://127.0.0.1:1']).catch((err: { code: number, stderr: string }) => err)
  t.equal((nowhere as { code: number }).code, 1, 'an unreachable broker: exit 1')

  const follow = spawn(process.execPath, [FIREHOSE_BIN, 'history', '--url', base, '--topic', 'gerrit/cli-follow', '--follow'])
  let out = ''
  follow.stdout.on('data', chunk => { out += String(chunk) })
  await waitFor('the --follow stream to open', async () => await broker.metric('firehose_history_streams') >= 1, 10000)
  await publish('gerrit/cli-follow', ['{"live":1}'])
  await waitFor('--follow to print the live event', () => out.includes('"live":1'), 10000)
  follow.kill()
  t.match(out, /^\{"offset":\d+,"timestamp":\d+,"topic":"gerrit\/cli-follow","payload":\{"live":1\}\}\n$/)
})

t.test('a reader that stops reading is disconnected and counted; the others keep getting events', async t => {
  const before = await broker.metric('firehose_history_slow_readers_disconnected_total')
  // a raw HTTP request whose socket is paused: connected, reading nothing (a frozen tab)
  const frozen = tcpConnect(broker.ports.ws, '127.0.0.1')
  await new Promise(resolve => frozen.once('connect', resolve))
  frozen.write('GET /v1/events?topic=gerrit/flood HTTP/1.1\r\nHost: x\r\n\r\n')
  let closed = false
  frozen.on('close', () => { closed = true })
  frozen.on('error', () => {})
  await waitFor('the frozen stream to open', async () => await broker.metric('firehose_history_streams') >= 1, 10000)
  frozen.pause()
  // and a WebSocket stream whose reader stops reading too
  const frozenWs = new WebSocket(`ws://127.0.0.1:${broker.ports.ws}/v1/stream?topic=gerrit/flood`)
  frozenWs.on('error', () => {})
  await new Promise(resolve => frozenWs.once('open', resolve))
  ;(frozenWs as unknown as { _socket: { pause: () => void } })._socket.pause()
  const healthy = sse('/v1/events?topic=gerrit/flood', e => e.length >= 500)
  await waitFor('the healthy stream to open', async () => await broker.metric('firehose_history_streams') >= 3, 10000)
  const big = 'x'.repeat(100 * 1024)
  const pub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  // 50 MB: more than the kernel buffers a paused loopback reader (tcp_rmem up to 32 MiB here)
  for (let i = 0; i < 500; i++) await pub.publishAsync('gerrit/flood', `${i} ${big}`, { qos: 1 })
  await pub.endAsync()
  t.equal((await healthy).events.length, 500, 'a reader that keeps up gets all 500 (50 MB)')
  // a paused socket does not see the broker close it: the broker's side is what counts
  await waitFor('both frozen readers to be cut off', async () => await broker.metric('firehose_history_slow_readers_disconnected_total') === before + 2, 20000)
  await waitFor('its stream closed', async () => await broker.metric('firehose_history_streams') === 0, 10000)
  frozen.resume()
  await waitFor('the frozen reader to see the end once it reads again', () => closed, 20000)
  t.pass('cut off (SSE and WebSocket), counted, their streams closed')
  frozenWs.terminate()
})

t.test('streams per address are limited: one more gets 429', async t => {
  await waitFor('earlier streams to close', async () => await broker.metric('firehose_history_streams') === 0, 10000)
  const controllers = Array.from({ length: 5 }, () => new AbortController())
  const open = await Promise.all(controllers.map(async c => await fetch(`${base}/v1/events?topic=gerrit/limit`, { signal: c.signal })))
  t.ok(open.every(r => r.status === 200), 'five open')
  const sixth = await fetch(`${base}/v1/events?topic=gerrit/limit`)
  t.equal(sixth.status, 429)
  t.match(await sixth.text(), /^too many streams from 127\.0\.0\.1 \(limits\.maxStreamsPerIp: 5\)/)
  const ws = await wsStream('/v1/stream?topic=gerrit/limit', 1).catch((err: Error) => err.message)
  t.match(ws, /^429 too many streams/, 'the WebSocket stream too')
  controllers.forEach(c => c.abort())
  await waitFor('the streams to close', async () => await broker.metric('firehose_history_streams') === 0, 10000)
  t.equal((await fetch(`${base}/v1/history?topic=gerrit/limit`)).status, 200, 'pages are not streams')
})
