import t from 'tap'
import { decodeEntries, decodeEntry, encodeEntry, type JournalEntry } from '../src/entry.js'

const stored = (topic: string, payload: string, user?: string): Buffer =>
  encodeEntry({ timestamp: 1_790_000_000_000, topic, payload: Buffer.from(payload), qos: 2, retain: true, json: false, ...(user === undefined ? {} : { user }) })

t.test('an entry decodes to what was encoded', async t => {
  const entry = decodeEntry(7, stored('gerrit/change-merged', 'x', 'gerrit-bridge'))
  t.match(entry, { offset: 7, timestamp: 1_790_000_000_000, topic: 'gerrit/change-merged', qos: 2, retain: true, user: 'gerrit-bridge' })
  t.equal(entry.payload.toString(), 'x')
})

t.test('a page decodes entry by entry, runs on one topic sharing its string', async t => {
  // topics of one length that differ only in their bytes, and a user between topic and payload
  const page = [stored('a/bc', '1'), stored('a/bc', '2', 'u'), stored('a/bd', '3'), stored('a/bd', '4'), stored('ü', '5'), stored('a/bc', '6')]
  const entries = decodeEntries(page.map((bytes, i) => ({ offset: 100 + i, bytes })), item => item.offset, item => item.bytes)
  const one = (e: JournalEntry): unknown => ({ offset: e.offset, topic: e.topic, payload: e.payload.toString(), user: e.user })
  t.same(entries.map(one), page.map((bytes, i) => one(decodeEntry(100 + i, bytes))))
  t.same(entries.map(e => e.topic), ['a/bc', 'a/bc', 'a/bd', 'a/bd', 'ü', 'a/bc'])
})
