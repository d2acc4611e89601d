import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { isJsonText, LevelJournal, type Journal, type JournalEntry } from '@firehose/journal'
import { EventSync, EventSyncStore, parseRule, type Rule } from '../src/index.js'

const DAY = 86_400_000
const dir = async (): Promise<string> => await mkdtemp(join(tmpdir(), 'firehose-event-sync-'))

interface Output { eventID: string, date: string, serviceName: string, triggerType: string, triggerOffset: number, truncated?: boolean, events: Record<string, { FirstEventDate?: string, lastEventDate?: string, numberOfEvents: number, events: Array<{ content: string, offset: number, eventKey: string, datetime: string, headers: unknown, queryParams: unknown }> }> }

/** A journal on disk, a clock the test moves, and event sync publishing into the journal as the broker does. */
async function setup (t: Test, rules: Rule[], options: { journalDir?: string, storeDir?: string, maxOutputBytes?: number, readAs?: (journal: Journal) => Journal['read'] } = {}) {
  const clock = { now: Date.UTC(2026, 0, 1) }
  const journalDir = options.journalDir ?? await dir()
  const storeDir = options.storeDir ?? await dir()
  const journal = await LevelJournal.open(journalDir, { retention: { maxAgeMs: 30 * DAY, maxBytes: 1e9 }, now: () => clock.now })
  const store = await EventSyncStore.open(storeDir)
  const outputs: Output[] = []
  const offFollow = journal.onAppended(entries => {
    for (const e of entries) if (e.topic.startsWith('eventsync/') && e.user === undefined && !e.topic.includes('/event/')) outputs.push(JSON.parse(e.payload.toString()) as Output)
  })
  const publish = async (topic: string, payload: Buffer, user?: string): Promise<void> => {
    await journal.append({ topic, payload, qos: 1, retain: false, json: isJsonText(payload), ...(user === undefined ? {} : { user }) })
  }
  const logs: Array<{ level: string, event: string, fields: Record<string, unknown> }> = []
  // what event sync reads the journal through (a fault injected, or the journal itself)
  const seen: Journal = options.readAs === undefined
    ? journal
    : {
        append: async (entry, inFlight) => await journal.append(entry, inFlight),
        release: async (client, packetId) => { await journal.release(client, packetId) },
        read: options.readAs(journal),
        offsetAt: async timestamp => await journal.offsetAt(timestamp),
        bounds: () => journal.bounds(),
        onAppended: listener => journal.onAppended(listener),
        close: async () => { await journal.close() }
      }
  const sync = await EventSync.open(rules, { journal: seen, store, publish, maxOutputBytes: options.maxOutputBytes ?? 1 << 20, journaled: () => true, log: (level, event, fields) => { logs.push({ level, event, fields }) }, now: () => clock.now, checkpointMs: 50 })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    offFollow()
    await sync.close()
    await journal.close()
  }
  t.teardown(close)
  const event = async (topic: string, content: string, user = 'infra'): Promise<JournalEntry> =>
    await journal.append({ topic, payload: Buffer.from(content), qos: 1, retain: false, json: isJsonText(Buffer.from(content)), user })
  const settled = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise(resolve => setTimeout(resolve, 20)) }
  return { clock, journal, store, sync, outputs, logs, publish, event, settled, close, journalDir, storeDir }
}

const windowRule = (extra: Record<string, unknown> = {}, trigger: Record<string, unknown> = {}): Rule => parseRule({
  name: 'nightly',
  trigger: { type: 'window', observationPeriod: 60, ...trigger },
  endpoints: [{ eventKey: 'merge', topic: 'gerrit/+/change-merged' }, { eventKey: 'deploy' }],
  ...extra
})

t.test('window: fires once every endpoint has reported within the period, with their events', async t => {
  const s = await setup(t, [windowRule()])
  const merge = await s.event('gerrit/nova/change-merged', '{"change":1}')
  s.clock.now += 10_000
  t.same(s.outputs, [], 'one endpoint is not enough')
  await s.sync.postEvent('nightly', 'deploy', { headers: { 'content-type': ['text/plain'] }, queryParams: { env: ['prod'] }, content: 'deployed' }, 'ops')
  await s.settled()
  t.equal(s.outputs.length, 1)
  const out = s.outputs[0]!
  t.equal(out.serviceName, 'nightly')
  t.equal(out.triggerType, 'window')
  t.match(out.eventID, /^[0-9a-f]{32}$/)
  t.same(Object.keys(out.events), ['merge', 'deploy'])
  t.equal(out.events.merge!.numberOfEvents, 1)
  t.equal(out.events.merge!.FirstEventDate, new Date(merge.timestamp).toISOString())
  t.equal(out.events.merge!.events[0]!.content, '{"change":1}')
  t.equal(out.events.merge!.events[0]!.offset, merge.offset)
  t.same(out.events.deploy!.events[0]!.headers, { 'content-type': ['text/plain'] })
  t.same(out.events.deploy!.events[0]!.queryParams, { env: ['prod'] })
  t.equal(out.events.deploy!.events[0]!.content, 'deployed')
  t.equal(out.date, out.events.deploy!.lastEventDate, 'dated by the event that completed the window')

  // exported: the next deploy alone does not fire; with a new merge it does, holding only the new ones
  await s.event('eventsync/nightly/event/deploy', 'again', 'ops')
  await s.settled()
  t.equal(s.outputs.length, 1)
  await s.event('gerrit/glance/change-merged', '{"change":2}')
  await s.settled()
  t.equal(s.outputs.length, 2)
  t.same(s.outputs[1]!.events.merge!.events.map(e => e.content), ['{"change":2}'])
  t.same(s.outputs[1]!.events.deploy!.events.map(e => e.content), ['again'], 'an MQTT payload on an HTTP endpoint\'s topic is its content')
  t.equal(s.sync.get('nightly')!.counters.triggers.window, 2)
  t.same(s.sync.get('nightly')!.counters.events, [2, 2])
})

t.test('window: an event older than the period does not count', async t => {
  const s = await setup(t, [windowRule()])
  await s.event('gerrit/nova/change-merged', 'old')
  s.clock.now += 61_000
  await s.sync.postEvent('nightly', 'deploy', { headers: {}, queryParams: {}, content: 'late' }, 'ops')
  await s.settled()
  t.same(s.outputs, [])
  t.equal(s.sync.get('nightly')!.counters.expired, 1)
  t.equal(s.sync.get('nightly')!.held[0]!.size, 0)
  await s.event('gerrit/nova/change-merged', 'fresh')
  await s.settled()
  t.equal(s.outputs.length, 1)
  t.same(s.outputs[0]!.events.merge!.events.map(e => e.content), ['fresh'])
})

t.test('keepEventAfterTrigger: events stay, every later event fires again with them', async t => {
  const s = await setup(t, [windowRule({}, { keepEventAfterTrigger: true })])
  await s.event('gerrit/nova/change-merged', 'm1')
  await s.event('eventsync/nightly/event/deploy', 'd1')
  await s.event('eventsync/nightly/event/deploy', 'd2')
  await s.settled()
  t.equal(s.outputs.length, 2)
  t.same(s.outputs[1]!.events.merge!.events.map(e => e.content), ['m1'], 'the merge is used again')
  t.same(s.outputs[1]!.events.deploy!.events.map(e => e.content), ['d1', 'd2'])
  // the period passes by the journal's clock: an entry of any topic moves it
  s.clock.now += 61_000
  await s.event('elsewhere/x', 'tick')
  await s.settled()
  s.sync.get('nightly')!.tick()
  t.equal(s.sync.get('nightly')!.held[1]!.size, 0, 'they go when the period is over')
  t.equal(s.sync.get('nightly')!.counters.expired, 0, 'used, so not counted as expired')
  await s.event('eventsync/nightly/event/deploy', 'd3')
  s.clock.now += 61_000
  await s.event('elsewhere/x', 'tick')
  await s.settled()
  s.sync.get('nightly')!.tick()
  t.equal(s.sync.get('nightly')!.counters.expired, 1, 'an unused one is')
})

t.test('reset flags everything in the period; a manual trigger sends what the period holds', async t => {
  const s = await setup(t, [windowRule()])
  await s.event('gerrit/nova/change-merged', 'm1')
  await s.sync.reset('nightly', 'ops')
  await s.event('eventsync/nightly/event/deploy', 'd1')
  await s.settled()
  t.same(s.outputs, [], 'the merge before the reset no longer counts')
  await s.sync.trigger('nightly', 'ops')
  await s.settled()
  t.equal(s.outputs.length, 1)
  t.equal(s.outputs[0]!.triggerType, 'none')
  t.same(s.outputs[0]!.events.merge, { numberOfEvents: 0, events: [] }, 'no dates when there are no events')
  t.same(s.outputs[0]!.events.deploy!.events.map(e => e.content), ['d1'])
})

t.test('a "none" rule fires only when asked, with whatever the period holds', async t => {
  const s = await setup(t, [parseRule({ name: 'weekly', trigger: { type: 'none', observationPeriod: '1h' }, endpoints: [{ eventKey: 'a' }, { eventKey: 'b' }] })])
  await s.event('eventsync/weekly/event/a', 'a1')
  await s.event('eventsync/weekly/event/b', 'b1')
  await s.settled()
  t.same(s.outputs, [])
  await s.sync.trigger('weekly', 'ops')
  await s.settled()
  t.equal(s.outputs.length, 1)
  t.same(Object.values(s.outputs[0]!.events).map(l => l.numberOfEvents), [1, 1])
})

t.test('condition and minEvents', async t => {
  const rule = parseRule({
    name: 'c',
    trigger: { type: 'window', observationPeriod: 60 },
    endpoints: [{ eventKey: 'build', minEvents: 2 }, { eventKey: 'mail' }, { eventKey: 'deploy' }],
    condition: 'build && (mail || deploy)'
  })
  const s = await setup(t, [rule])
  await s.event('eventsync/c/event/build', 'b1')
  await s.event('eventsync/c/event/deploy', 'd1')
  await s.settled()
  t.same(s.outputs, [], 'build needs two')
  await s.event('eventsync/c/event/build', 'b2')
  await s.settled()
  t.equal(s.outputs.length, 1)
  t.same(s.outputs[0]!.events.mail, { numberOfEvents: 0, events: [] })
})

t.test('eventID: the digest of the events; two syncs of the same events share it', async t => {
  const s = await setup(t, [windowRule({}, { keepEventAfterTrigger: true })])
  await s.event('gerrit/nova/change-merged', 'm1')
  await s.event('eventsync/nightly/event/deploy', 'd1')
  await s.settled()
  await s.sync.trigger('nightly', 'ops')
  await s.settled()
  t.equal(s.outputs.length, 2)
  t.equal(s.outputs[0]!.eventID, s.outputs[1]!.eventID)
  t.not(s.outputs[0]!.triggerOffset, s.outputs[1]!.triggerOffset)
})

t.test('a combined event too large for the broker is cut to fit, counted, and says so', async t => {
  const s = await setup(t, [parseRule({ name: 'big', trigger: { type: 'none', observationPeriod: 60 }, endpoints: [{ eventKey: 'a' }, { eventKey: 'b' }] })], { maxOutputBytes: 4096 })
  for (let i = 0; i < 20; i++) await s.event(`eventsync/big/event/${i % 2 === 0 ? 'a' : 'b'}`, 'x'.repeat(300) + i)
  await s.sync.trigger('big', 'ops')
  await s.settled()
  t.equal(s.outputs.length, 1)
  const out = s.outputs[0]!
  t.equal(out.truncated, true)
  t.equal(s.sync.totals.truncated, 1)
  t.equal(out.events.a!.numberOfEvents, 10, 'counts stay whole')
  const kept = out.events.a!.events.length + out.events.b!.events.length
  t.ok(kept > 0 && kept < 20, `some events kept (${kept})`)
  t.ok(Math.abs(out.events.a!.events.length - out.events.b!.events.length) <= 1, 'both endpoints represented')
  t.ok(Buffer.byteLength(JSON.stringify(out)) <= 4096)
})

t.test('exactly once across a restart: a decision published before is not published again; one never published is', async t => {
  const journalDir = await dir()
  const storeDir = await dir()
  const a = await setup(t, [windowRule()], { journalDir, storeDir })
  await a.event('gerrit/nova/change-merged', 'm1')
  await a.event('eventsync/nightly/event/deploy', 'd1')
  await a.settled()
  t.equal(a.outputs.length, 1)
  // where the rule stood before any of this, as a crash right after opening would have left it
  const before = (await a.store.checkpoints()).get('nightly')!
  await a.close()

  // restarting from that place re-reads both events and the published sync: nothing is published again
  const store = await EventSyncStore.open(storeDir)
  await store.writeCheckpoints(new Map([['nightly', { ...before, through: 0, exportedThrough: 0 }]]))
  await store.close()
  const b = await setup(t, [windowRule()], { journalDir, storeDir })
  await b.settled()
  t.same(b.outputs, [], 'the decision is re-made and found published')
  // a decision made but never published (its publish lost to a crash): published at the next start
  await b.event('gerrit/nova/change-merged', 'm2')
  await b.settled()
  await b.close()
  const j = await LevelJournal.open(journalDir, { retention: { maxAgeMs: 30 * DAY, maxBytes: 1e9 }, now: () => b.clock.now + 1000 })
  await j.append({ topic: 'eventsync/nightly/event/deploy', payload: Buffer.from('d2'), qos: 1, retain: false, user: 'ops' })
  await j.close()
  const c = await setup(t, [windowRule()], { journalDir, storeDir })
  await c.settled()
  t.equal(c.outputs.length, 1, 'the window completed while event sync was down is published once')
  t.same(c.outputs[0]!.events.deploy!.events.map(e => e.content), ['d2'])
  await c.close()
  const d = await setup(t, [windowRule()], { journalDir, storeDir })
  await d.settled()
  t.same(d.outputs, [], 'and not again')
})

t.test('a replayed decision whose combined event the fold missed is found in the journal before it is published: counted, logged, not published again', async t => {
  const journalDir = await dir()
  const storeDir = await dir()
  const a = await setup(t, [windowRule()], { journalDir, storeDir })
  const start = (await a.store.checkpoints()).get('nightly')!
  await a.event('gerrit/nova/change-merged', 'm1')
  await a.event('eventsync/nightly/event/deploy', 'd1')
  await a.settled()
  t.equal(a.outputs.length, 1)
  const published = a.journal.bounds().last
  await a.event('gerrit/nova/change-abandoned', 'after')
  await a.close()
  const store = await EventSyncStore.open(storeDir)
  await store.writeCheckpoints(new Map([['nightly', start]]))
  await store.close()

  // read back from before the decision, through a journal read that loses the combined event
  // once (the fault the check is there for): the fold re-makes the decision and never meets it
  let hidden = 0
  const b = await setup(t, [windowRule()], {
    journalDir,
    storeDir,
    readAs: journal => async (from, limit) => {
      const entries = await journal.read(from, limit)
      // pages only (the search for the period's start reads one entry at a time)
      if (hidden > 0 || limit === 1 || !entries.some(e => e.offset === published)) return entries
      hidden++
      return entries.filter(e => e.offset !== published)
    }
  })
  t.equal(start.through, 0, 'the rule stood before both events')
  await b.settled()
  t.equal(hidden, 1, 'the fold did not see the combined event')
  t.same(b.outputs, [], 'not published again')
  t.equal(b.sync.totals.republishesAvoided, 1)
  t.match(b.logs, [
    { level: 'warn', event: 'eventsync.gap', fields: { after: published - 1, next: published + 1 } },
    { level: 'error', event: 'eventsync.already-published', fields: { rule: 'nightly', triggerOffset: published - 1, at: published } }
  ])
  t.equal(b.sync.get('nightly')!.pending.size, 0, 'nothing left pending')
  t.equal(b.sync.totals.gaps, 1, 'the offset the read lost is counted as a gap')
  await b.event('gerrit/nova/change-merged', 'm2')
  await b.event('eventsync/nightly/event/deploy', 'd2')
  await b.settled()
  t.equal(b.outputs.length, 1, 'the rule goes on')
})

t.test('a changed rule starts afresh; state, counters and held events per endpoint', async t => {
  const storeDir = await dir()
  const journalDir = await dir()
  const a = await setup(t, [windowRule()], { journalDir, storeDir })
  await a.event('gerrit/nova/change-merged', 'm1')
  await a.settled()
  t.equal(a.sync.get('nightly')!.held[0]!.size, 1)
  await a.close()
  const b = await setup(t, [windowRule()], { journalDir, storeDir })
  await b.settled()
  t.equal(b.sync.get('nightly')!.held[0]!.size, 1, 'the held merge is read back from the journal')
  await b.sync.replaceConfigRules([windowRule({ condition: 'merge || deploy' })])
  t.equal(b.sync.get('nightly')!.held[0]!.size, 0, 'changed: afresh')
  await b.event('eventsync/nightly/event/deploy', 'd1')
  await b.settled()
  t.equal(b.outputs.length, 1)
  await b.sync.replaceConfigRules([])
  t.equal(b.sync.get('nightly'), undefined)
})

t.test('eventID is the MD5 of the canonical JSON of the events as published (headers unsorted, non-ASCII, binary, empty lists)', async t => {
  const { createHash } = await import('node:crypto')
  const { canonicalJson } = await import('../src/index.js')
  const s = await setup(t, [parseRule({ name: 'id', trigger: { type: 'none', observationPeriod: 60 }, endpoints: [{ eventKey: 'z' }, { eventKey: 'a' }, { eventKey: 'empty' }, { eventKey: 'bin', topic: 'raw/#' }] })])
  await s.sync.postEvent('id', 'z', { headers: { 'X-Z': ['2', '1'], 'A-Header': ['é'] }, queryParams: { q: ['ü', ''], a: ['1'] }, content: 'Jüri "quoted" \n' }, 'ops')
  await s.event('eventsync/id/event/a', '{"not":"an http body"}')
  await s.journal.append({ topic: 'raw/x', payload: Buffer.from([0xff, 0x00, 0x80]), qos: 1, retain: false, user: 'infra' })
  await s.sync.trigger('id', 'ops')
  await s.settled()
  t.equal(s.outputs.length, 1)
  const out = s.outputs[0]!
  t.equal(out.eventID, createHash('md5').update(canonicalJson(out.events)).digest('hex'))
  t.same(Object.keys(out.events), ['z', 'a', 'empty', 'bin'], 'in the rule\'s order')
  t.same(out.events.bin!.events[0], { datetime: out.events.bin!.events[0]!.datetime, eventKey: 'bin', headers: {}, queryParams: {}, content: '/wCA', contentEncoding: 'base64', topic: 'raw/x', offset: 3 })
  t.equal(out.events.z!.events[0]!.content, 'Jüri "quoted" \n')
})
