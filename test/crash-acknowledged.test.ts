import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { sleep, waitFor } from './helpers/wait.js'

// A PUBACK means "stored": a QoS 1 message the broker acknowledged reaches an offline
// persistent subscriber, and is in the journal, however the broker dies. The broker is
// SIGKILLed again and again while a publisher keeps 20 messages in flight; every acknowledged
// one must arrive, and be in the history once, in publish order.

// 30 in the suite (each a broker start: the suite's time budget); FIREHOSE_CRASH_KILLS=500 for a long run
const KILLS = Number(process.env.FIREHOSE_CRASH_KILLS ?? 30)
// no cap on what an offline session keeps (limits.maxQueuedMessages: its own test): every acknowledged message is counted
const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { limits: { maxQueuedMessages: 0 } } })
t.teardown(() => broker.stop())
const url = (): string => `mqtt://127.0.0.1:${broker.ports.mqtt}`

t.test(`no acknowledged QoS 1 message is lost to ${KILLS} SIGKILLs`, async t => {
  const first = await connect(url(), { clientId: 'crash-reader', clean: false })
  await first.subscribeAsync('gerrit/crash', { qos: 1 })
  await first.endAsync()

  const acknowledged = new Set<number>()
  let next = 0
  for (let kill = 0; kill < KILLS; kill++) {
    const pub = await connect(url(), { username: 'gerrit', password: USERS.gerrit, clientId: `crash-publisher-${kill}` })
    pub.on('error', () => {})
    const state = { running: true }
    const sending = (async () => {
      while (state.running) {
        const batch = Array.from({ length: 20 }, () => ++next)
        await Promise.all(batch.map(async id => {
          await pub.publishAsync('gerrit/crash', String(id), { qos: 1 }).then(() => { acknowledged.add(id) }, () => {})
        }))
      }
    })()
    await sleep(30 + Math.random() * 150)
    await broker.signal('SIGKILL')
    state.running = false
    pub.end(true)
    await Promise.race([sending, sleep(2000)])
    await broker.launch()
  }
  t.ok(acknowledged.size > KILLS * 20, `${acknowledged.size} messages acknowledged across ${KILLS} kills`)

  const reader = await connect(url(), { clientId: 'crash-reader', clean: false })
  t.teardown(() => reader.endAsync())
  const received = new Set<number>()
  reader.on('message', (_topic, payload) => received.add(Number(payload.toString())))
  let before = -1
  await waitFor('the queue to drain', async () => {
    if (received.size === before && [...acknowledged].every(id => received.has(id))) return true
    before = received.size
    await sleep(500)
    return false
  }, 60000).catch(() => {})
  const missing = [...acknowledged].filter(id => !received.has(id))
  t.same(missing, [], `every acknowledged message arrived (${received.size} received, ${acknowledged.size} acknowledged)`)

  const journaled: number[] = []
  for (let page = '/v1/history?topic=gerrit/crash&limit=1000'; ;) {
    const res = await fetch(`http://127.0.0.1:${broker.ports.ws}${page}`)
    const body = await res.json() as { events: Array<{ payload: number }>, next: string | null }
    journaled.push(...body.events.map(e => e.payload))
    if (body.next === null) break
    page = body.next
  }
  const inJournal = new Set(journaled)
  t.same([...acknowledged].filter(id => !inJournal.has(id)), [], `every acknowledged message is in the journal (${journaled.length} entries)`)
  t.equal(inJournal.size, journaled.length, 'each once')
  t.ok(journaled.every((id, i) => i === 0 || id > journaled[i - 1]!), 'in publish order')
})
