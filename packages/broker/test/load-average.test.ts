import t from 'tap'
import { LoadAverage } from '../src/observability/load-average.js'

t.test('converges on the per-minute rate, like Mosquitto\'s load figures', async t => {
  const load = new LoadAverage(60)
  t.equal(load.update(0, 10), 0, 'first call only sets the baseline')
  let total = 0
  let value = 0
  for (let i = 0; i < 100; i++) {
    total += 100 // 100 messages every 10 s = 600 a minute
    value = load.update(total, 10)
  }
  t.ok(Math.abs(value - 600) < 1, `close to 600 (got ${value})`)
  for (let i = 0; i < 100; i++) value = load.update(total, 10)
  t.ok(value < 1, `decays to zero when idle (got ${value})`)
})
