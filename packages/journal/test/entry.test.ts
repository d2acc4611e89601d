import t from 'tap'
import { decodeEntries, decodeEntry, encodeEntry, isJsonText, type JournalEntry } from '../src/entry.js'

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

t.test('JSON text is told from other payloads, whatever its first byte', async t => {
  const json = ['{"type":"change-merged"}', ' \r\n\t[1, 2]', '"text"', '-1.5e3', '0', '7', 'true', 'false', 'null', '\n{}\n', '{"ü":"é"}']
  for (const text of json) t.ok(isJsonText(Buffer.from(text)), `${JSON.stringify(text)} is JSON`)
  // openers that lead nowhere, and what no JSON text opens with
  const not = ['', '   ', 'x'.repeat(1024), 'tru', 'nul', 'fals', '{', '[1,', '"open', '-', '01', '{"a":1}}', 'NaN', 'Infinity', "{'a':1}", '+1', '.5', 'undefined', '\u00a0{}']
  for (const text of not) t.notOk(isJsonText(Buffer.from(text)), `${JSON.stringify(text)} is not JSON`)
  t.notOk(isJsonText(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])), 'a string of invalid UTF-8 is not JSON text')
  t.notOk(isJsonText(Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), 'a byte order mark is not JSON whitespace: flagged JSON, its bytes spliced into an envelope would break it')
  t.notOk(isJsonText(Buffer.from([0x00, 0x7b, 0x7d])), 'binary is not')
})
