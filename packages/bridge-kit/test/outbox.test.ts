import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Packet } from 'mqtt-packet'
import { pino } from 'pino'
import t from 'tap'
import { StoreLockedError } from '@firehose/runtime'
import { Outbox, type OutboxOptions } from '../src/outbox/outbox.js'

const logs: Array<{ level: number, msg: string, event?: string }> = []
const logger = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line)) } })
const dir = (): string => mkdtempSync(join(tmpdir(), 'firehose-outbox-'))
const ev = (n: number) => ({ topic: `t/${n}`, payload: Buffer.from(`payload ${n}`) })
const open = async (d: string, options: Partial<OutboxOptions> = {}): Promise<Outbox> =>
  await Outbox.open({ dir: d, maxEvents: 100, dedupeDays: 1, logger, source: 'test', ...options })

// What mqtt.js does with the outbox's store for one QoS 2 event: the PUBLISH is stored before
// it is sent, and deleted when the broker's PUBCOMP arrives — the acknowledgement.
const store = (outbox: Outbox, op: 'put' | 'del', packet: Record<string, unknown>): Promise<void> => new Promise((resolve, reject) => {
  const cb = (err?: Error): void => { if (err) reject(err); else resolve() }
  if (op === 'put') outbox.mqttStore.put(packet as unknown as Packet, cb)
  else outbox.mqttStore.del(packet as unknown as Packet, cb)
})
let messageId = 0
async function sendNext (outbox: Outbox, { acknowledge = true } = {}): Promise<{ payload: string, messageId: number }> {
  const entry = await outbox.next(AbortSignal.timeout(5000))
  if (entry === undefined) throw new Error('no event')
  const id = ++messageId
  await store(outbox, 'put', { cmd: 'publish', messageId: id, qos: 2, topic: entry.topic, payload: entry.payload })
  if (acknowledge) await store(outbox, 'del', { messageId: id })
  return { payload: entry.payload.toString(), messageId: id }
}

t.test('events survive a reopen, in order, until the broker acknowledges them', async t => {
  const d = dir()
  const first = await open(d)
  for (let i = 1; i <= 5; i++) t.equal(await first.accept(ev(i), `k${i}`), 'queued')
  t.equal((await sendNext(first)).payload, 'payload 1')
  await first.close()

  const second = await open(d)
  t.equal(second.depth, 4)
  const seen: string[] = []
  while (second.depth > 0) seen.push((await sendNext(second)).payload)
  t.same(seen, ['payload 2', 'payload 3', 'payload 4', 'payload 5'])
  t.equal(await second.accept(ev(6), 'k6'), 'queued')
  t.equal((await second.next(AbortSignal.timeout(1000)))?.topic, 't/6', 'sequence numbers continue after a reopen')
  await second.close()
})

t.test('a PUBLISH in flight at a crash is still in flight after a reopen, and its PUBCOMP removes the event', async t => {
  const d = dir()
  const a = await open(d)
  await a.accept(ev(1))
  await a.accept(ev(2))
  const { messageId: id } = await sendNext(a, { acknowledge: false })
  t.equal(a.resending, true, 'the handshake is open')
  await a.close()

  const b = await open(d)
  t.equal(b.resending, true, 'still open after the reopen: mqtt.js will re-send it')
  const stored: Packet[] = []
  for await (const packet of b.mqttStore.createStream() as AsyncIterable<Packet>) stored.push(packet)
  t.match(stored, [{ cmd: 'publish', messageId: id, topic: 't/1' }], 'the stored PUBLISH, for mqtt.js to re-send')
  const acknowledged = b.acknowledgement(AbortSignal.timeout(5000))
  await store(b, 'del', { messageId: id })
  await acknowledged
  t.equal(b.resending, false)
  t.equal(b.depth, 1)
  t.equal((await b.next(AbortSignal.timeout(1000)))?.topic, 't/2', 'the acknowledged event is gone, the next one remains')
  await b.close()
})

t.test('next() waits for an event, and gives up when its signal aborts', async t => {
  const a = await open(dir())
  const controller = new AbortController()
  const waiting = a.next(controller.signal)
  setTimeout(() => { a.accept(ev(7)).catch(t.error) }, 50)
  t.equal((await waiting)?.topic, 't/7')
  const idle = new AbortController()
  setTimeout(() => idle.abort(), 50)
  await sendNext(a)
  t.equal(await a.next(idle.signal), undefined)
  await a.close()
})

t.test('a dedupe key is remembered after the event is gone, across reopens', async t => {
  const d = dir()
  const a = await open(d, { maxEvents: 10 })
  t.equal(await a.accept(ev(1), 'same'), 'queued')
  await sendNext(a)
  t.equal(await a.accept(ev(1), 'same'), 'duplicate')
  await a.close()
  const b = await open(d, { maxEvents: 10 })
  t.equal(await b.accept(ev(1), 'same'), 'duplicate')
  t.equal(await b.accept(ev(1)), 'queued', 'without a key nothing is deduplicated')
  await b.close()
})

t.test('dedupe keys older than dedupeDays are forgotten at open', async t => {
  let now = 1_000_000_000_000
  const d = dir()
  const a = await open(d, { now: () => now })
  await a.accept(ev(1), 'old')
  now += 2 * 86400_000
  await a.accept(ev(2), 'new')
  await a.close()
  const b = await open(d, { now: () => now })
  t.equal(await b.hasSeen('old'), false)
  t.equal(await b.hasSeen('new'), true)
  await b.close()
})

t.test('when full, accept waits until the broker takes an event, and says so loudly', async t => {
  logs.length = 0
  const a = await open(dir(), { maxEvents: 2 })
  await a.accept(ev(1))
  await a.accept(ev(2))
  let third = false
  const pending = a.accept(ev(3)).then(r => { third = true; return r })
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(third, false, 'the source is held back')
  t.ok(logs.some(l => l.level === 50 && l.event === 'outbox.full'), 'an error when full')
  t.ok(logs.some(l => l.level === 40 && l.event === 'outbox.filling' && /50% full/.test(l.msg)), 'a warning at half')
  await sendNext(a)
  t.equal(await pending, 'queued')
  t.equal(a.depth, 2)
  await a.close()
})

t.test('a second bridge on the same directory is refused with a clear error', async t => {
  const d = dir()
  const a = await open(d, { maxEvents: 10 })
  const err: unknown = await open(d, { maxEvents: 10 }).then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof StoreLockedError, 'a locked store (exit 1: it may pass), not a configuration error')
  t.match((err as Error).message, /outbox\.dir: cannot open .*another bridge/)
  await a.close()
})
