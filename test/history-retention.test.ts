import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { MosquittoSub } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { sleep, waitFor } from './helpers/wait.js'

// Retention by age and by size, enforced while the broker runs; a reader asking for an offset
// past retention starts at the oldest held and is told so; a restart keeps offsets increasing;
// $SYS/broker/journal/... shows the bounds.

interface Bounds { first: number, last: number, bytes: number }

t.test('by age: entries older than maxAge go; an older offset starts at the oldest, with a header and a comment', async t => {
  const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { journal: { retention: { maxAge: '2s' } } } })
  t.teardown(() => broker.stop())
  const base = `http://127.0.0.1:${broker.ports.ws}`
  const bounds = async (): Promise<Bounds> => await (await fetch(`${base}/v1/journal`)).json() as Bounds
  const pub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  for (let i = 0; i < 5; i++) await pub.publishAsync('gerrit/old', String(i), { qos: 1 })
  await sleep(2500)
  await pub.publishAsync('gerrit/new', 'fresh', { qos: 1 })
  await waitFor('the old entries to go', async () => (await bounds()).first > 5, 10000)
  const { first, last } = await bounds()
  t.equal(first, last, 'only the fresh one is left')

  const controller = new AbortController()
  const res = await fetch(`${base}/v1/events?topic=gerrit/%23&since=1`, { signal: controller.signal })
  t.equal(res.headers.get('x-firehose-history-start'), String(first))
  const reader = res.body!.getReader()
  let text = ''
  while (!text.includes('data: ')) text += new TextDecoder().decode((await reader.read()).value)
  controller.abort()
  t.match(text, new RegExp(`^: history starts at offset ${first}: older events are past retention\\n\\n`))
  t.match(text, /"payload":"fresh"/)

  const sys = new MosquittoSub(['-p', String(broker.ports.mqtt), '-t', '$SYS/broker/journal/#', '-v'])
  t.teardown(() => sys.stop())
  await sys.waitForLine(l => l === `$SYS/broker/journal/offset/first ${first}`)
  t.pass('$SYS/broker/journal/offset/first is the oldest offset held')

  await pub.endAsync()
  await broker.restart()
  const again = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  await again.publishAsync('gerrit/after', 'restart', { qos: 1 })
  await again.endAsync()
  t.equal((await bounds()).last, last + 1, 'offsets go on from where they were after a restart')
})

t.test('by size: the journal keeps the newest entries within maxBytes', async t => {
  const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { journal: { retention: { maxBytes: '20KiB' } } } })
  t.teardown(() => broker.stop())
  const base = `http://127.0.0.1:${broker.ports.ws}`
  const pub = await connect(`mqtt://127.0.0.1:${broker.ports.mqtt}`, { username: 'gerrit', password: USERS.gerrit })
  const kib = 'x'.repeat(1024)
  for (let i = 0; i < 100; i++) await pub.publishAsync('gerrit/big', `${i} ${kib}`, { qos: 1 })
  await pub.endAsync()
  await waitFor('retention by size', async () => ((await (await fetch(`${base}/v1/journal`)).json()) as Bounds).bytes <= 20 * 1024, 10000)
  const bounds = await (await fetch(`${base}/v1/journal`)).json() as Bounds
  t.ok(bounds.last - bounds.first + 1 >= 15 && bounds.last - bounds.first + 1 <= 20, `about 20 KiB of 1 KiB events kept: ${bounds.last - bounds.first + 1}`)
  const { events } = await (await fetch(`${base}/v1/history?topic=gerrit/big&limit=1000`)).json() as { events: Array<{ payload: string }> }
  t.equal(events.at(-1)!.payload.split(' ')[0], '99', 'the newest are the ones kept')
})
