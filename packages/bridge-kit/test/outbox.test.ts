import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import t from 'tap'
import { Outbox } from '../src/outbox.js'

const logs: Array<{ level: number, msg: string }> = []
const logger = pino({ level: 'debug' }, { write: (line: string) => { logs.push(JSON.parse(line)) } })
const dir = (): string => mkdtempSync(join(tmpdir(), 'firehose-outbox-'))
const ev = (n: number) => ({ topic: `t/${n}`, payload: Buffer.from(`payload ${n}`) })

t.test('events survive a reopen, in order, until removed', async t => {
  const d = dir()
  const first = await Outbox.open({ dir: d, maxEvents: 100, dedupeDays: 1, logger })
  for (let i = 1; i <= 5; i++) t.equal(await first.accept(ev(i), `k${i}`), 'queued')
  const head = await first.head()
  t.equal(head?.topic, 't/1')
  await first.remove(head!.seq)
  await first.close()

  const second = await Outbox.open({ dir: d, maxEvents: 100, dedupeDays: 1, logger })
  t.equal(second.depth, 4)
  const seen: string[] = []
  for (let e = await second.head(); e !== undefined; e = await second.head()) {
    seen.push(e.payload.toString())
    await second.remove(e.seq)
  }
  t.same(seen, ['payload 2', 'payload 3', 'payload 4', 'payload 5'])
  t.equal(await second.accept(ev(6), 'k6'), 'queued')
  t.equal((await second.head())?.topic, 't/6', 'sequence numbers continue after a reopen')
  await second.close()
})

t.test('a dedupe key is remembered after the event is gone, across reopens', async t => {
  const d = dir()
  const a = await Outbox.open({ dir: d, maxEvents: 10, dedupeDays: 1, logger })
  t.equal(await a.accept(ev(1), 'same'), 'queued')
  await a.remove((await a.head())!.seq)
  t.equal(await a.accept(ev(1), 'same'), 'duplicate')
  await a.close()
  const b = await Outbox.open({ dir: d, maxEvents: 10, dedupeDays: 1, logger })
  t.equal(await b.accept(ev(1), 'same'), 'duplicate')
  t.equal(await b.accept(ev(1)), 'queued', 'without a key nothing is deduplicated')
  await b.close()
})

t.test('old dedupe keys are pruned', async t => {
  let now = 1_000_000_000_000
  const d = dir()
  const a = await Outbox.open({ dir: d, maxEvents: 10, dedupeDays: 1, logger, now: () => now })
  await a.accept(ev(1), 'old')
  now += 2 * 86400_000
  await a.accept(ev(2), 'new')
  t.equal(await a.pruneSeen(), 1)
  t.equal(await a.hasSeen('old'), false)
  t.equal(await a.hasSeen('new'), true)
  await a.close()
})

t.test('when full, accept waits until the broker takes an event, and says so loudly', async t => {
  logs.length = 0
  const a = await Outbox.open({ dir: dir(), maxEvents: 2, dedupeDays: 1, logger })
  await a.accept(ev(1))
  await a.accept(ev(2))
  let third = false
  const pending = a.accept(ev(3)).then(r => { third = true; return r })
  await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(third, false, 'the source is held back')
  t.ok(logs.some(l => l.level === 50 && /outbox full/.test(l.msg)), 'an error when full')
  t.ok(logs.some(l => l.level === 40 && /50% full/.test(l.msg)), 'a warning at half')
  await a.remove((await a.head())!.seq)
  t.equal(await pending, 'queued')
  t.equal(a.depth, 2)
  await a.close()
})

t.test('a second bridge on the same directory is refused with a clear error', async t => {
  const d = dir()
  const a = await Outbox.open({ dir: d, maxEvents: 10, dedupeDays: 1, logger })
  await t.rejects(Outbox.open({ dir: d, maxEvents: 10, dedupeDays: 1, logger }), /outbox\.dir: cannot open .*another bridge/)
  await a.close()
})
