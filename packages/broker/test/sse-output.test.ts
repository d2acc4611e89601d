import t from 'tap'
import type { JournalEntry } from '@firehose/journal'
import { sseFrameParts } from '../src/http/envelope.js'
import { SseOutput } from '../src/http/sse-output.js'

const entry = (offset: number, payload: string | Buffer, json: boolean, topic = 'gerrit/change-merged'): JournalEntry =>
  ({ offset, timestamp: 1_790_000_000_000 + offset, topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: 1, retain: false, ...(json ? { json: true } : {}) })

const frameOf = (e: JournalEntry): string => Buffer.concat(sseFrameParts(e)).toString()

/** What an output hands out, with each write's `sent` callback kept to call later (the socket's pace). */
function collect (output: SseOutput): { text: () => string, writes: Array<{ data: Buffer, sent?: () => void }> } {
  const writes: Array<{ data: Buffer, sent?: () => void }> = []
  output.flush((data, sent) => { writes.push({ data: Buffer.from(data), sent }) }) // copied: the buffer may be filled again
  return { writes, text: () => writes.map(w => w.data.toString()).join('') }
}

t.test('history frames are byte for byte the shared live frames, whatever the payload', async t => {
  const entries = [
    entry(1, '{"change":{"number":1}}', true),
    entry(2, '{"multi":\n"line"}', true), // line breaks made spaces
    entry(3, 'plain "text"\nwith a break', false),
    entry(4, Buffer.from([0xff, 0x00, 0xfe]), false), // not UTF-8: base64
    entry(5, '"ünïcode ✓"', true, 'launchpad/bug/ü'),
    entry(6, '{"again":true}', true, 'launchpad/bug/ü') // the topic's JSON remembered from the last frame
  ]
  const output = new SseOutput()
  for (const e of entries) output.add(e)
  t.equal(output.length, entries.reduce((n, e) => n + Buffer.byteLength(frameOf(e)), 0))
  const { text } = collect(output)
  t.equal(text(), entries.map(frameOf).join(''))
  t.equal(output.length, 0)
})

t.test('frames past one buffer go out in order, in several writes', async t => {
  const big = `{"pad":"${'x'.repeat(100_000)}"}`
  const entries = Array.from({ length: 8 }, (_, i) => entry(i + 1, big, true))
  const huge = entry(9, `{"pad":"${'y'.repeat(600_000)}"}`, true) // larger than a buffer: one of its own
  const output = new SseOutput()
  for (const e of [...entries, huge]) output.add(e)
  const { writes, text } = collect(output)
  t.ok(writes.length >= 4, `${writes.length} writes`)
  t.equal(text(), [...entries, huge].map(frameOf).join(''))
})

t.test('live frames after history keep their order and are gathered into one write', async t => {
  const output = new SseOutput()
  output.add(entry(1, '{"a":1}', true))
  const live = [entry(2, '{"b":2}', true), entry(3, 'text', false)]
  for (const e of live) output.addFrame(sseFrameParts(e))
  const { writes, text } = collect(output)
  t.equal(writes.length, 2, 'the history buffer, then the live frames')
  t.equal(writes[1]!.sent, undefined, 'live frames are shared: never handed back to be filled')
  t.equal(text(), [entry(1, '{"a":1}', true), ...live].map(frameOf).join(''))
})

t.test('a buffer is filled again only after the socket has sent it', async t => {
  const output = new SseOutput()
  output.add(entry(1, '{"first":1}', true))
  const first: Array<{ data: Buffer, sent?: () => void }> = []
  output.flush((data, sent) => { first.push({ data, sent }) })
  t.equal(first.length, 1)
  t.type(first[0]!.sent, 'function')
  // not yet sent: the next frames go into another buffer, leaving what the socket holds alone
  const sentText = first[0]!.data.toString()
  output.add(entry(2, '{"second":2}', true))
  let second: Buffer | undefined
  output.flush(data => { second = data })
  t.not(second!.buffer, first[0]!.data.buffer)
  t.equal(first[0]!.data.toString(), sentText)
  // once sent, that buffer is filled again
  first[0]!.sent!()
  output.add(entry(3, '{"third":3}', true))
  let third: Buffer | undefined
  output.flush(data => { third = data })
  t.equal(third!.buffer, first[0]!.data.buffer, 'the sent buffer is reused')
  t.equal(third!.toString(), frameOf(entry(3, '{"third":3}', true)))
})
