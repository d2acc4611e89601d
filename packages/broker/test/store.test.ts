import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { openLevelSessionStore } from '../src/store.js'

// A single broker's id sorts in run order: aedes-persistence-level replays a session's queue
// in key order, broker id first, so messages queued before a restart come before later ones.

t.test('each run of a LevelDB store gets the next id, sorting after the ones before', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'firehose-store-'))
  const ids: string[] = []
  for (let run = 0; run < 11; run++) {
    const { persistence, brokerId } = await openLevelSessionStore(dir, 'test')
    ids.push(brokerId)
    await persistence.destroy()
  }
  t.equal(ids[0], 'run-000000000001')
  t.equal(ids[10], 'run-000000000011')
  t.same([...ids].sort(), ids, 'string order is run order (10 after 9)')
  t.equal(new Set(ids).size, ids.length, 'no two runs share an id')
})
