import t from 'tap'
import { Backoff } from '../src/backoff.js'

t.test('doubles up to the cap, with jitter between half and all of it', async t => {
  const top = new Backoff(100, 1000, () => 1)
  t.same([1, 2, 3, 4, 5, 6].map(() => top.next()), [100, 200, 400, 800, 1000, 1000])
  const bottom = new Backoff(100, 1000, () => 0)
  t.same([1, 2, 3].map(() => bottom.next()), [50, 100, 200])
  top.reset()
  t.equal(top.next(), 100, 'reset starts over')
})
