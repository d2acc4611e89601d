import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { follow, LevelJournal, type Journal } from '../src/index.js'

// follow() on a real LevelJournal: a reader that goes away while its last history read is
// still out must end its follow (done settles), not wait forever for a wake that never comes.

t.test('stopped during the last history read: done settles', async t => {
  const journal = await LevelJournal.open(await mkdtemp(join(tmpdir(), 'firehose-follow-')), { retention: { maxAgeMs: 86_400_000, maxBytes: 1e9 } })
  t.teardown(() => journal.close())
  await journal.append({ topic: 'a', payload: Buffer.from('1'), qos: 1, retain: false })
  // the same journal, each read 100 ms slower
  const slow: Journal = {
    append: async (entry, inFlight) => await journal.append(entry, inFlight),
    release: async (client, packetId) => { await journal.release(client, packetId) },
    read: async (from, limit) => {
      await new Promise(resolve => setTimeout(resolve, 100))
      return await journal.read(from, limit)
    },
    offsetAt: async timestamp => await journal.offsetAt(timestamp),
    bounds: () => journal.bounds(),
    onAppended: listener => journal.onAppended(listener),
    close: async () => { await journal.close() }
  }
  const got: number[] = []
  const following = follow(slow, { from: 1, accept: () => true, deliver: entry => { got.push(entry.offset) } })
  await new Promise(resolve => setTimeout(resolve, 150)) // the first page is in; the second (empty) read is out
  following.stop()
  const settled = await Promise.race([following.done.then(() => true), new Promise(resolve => setTimeout(() => resolve(false), 2000))])
  t.equal(settled, true, 'done settles')
  t.same(got, [1])
})
