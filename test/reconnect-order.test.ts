import { connect as mqttConnect, type MqttClient } from 'mqtt'
import t from 'tap'
import { BrokerProcess } from './helpers/broker-process.js'
import { connect } from './helpers/mqtt.js'
import { ACL, USERS } from './helpers/policy.js'
import { sleep, waitFor } from './helpers/wait.js'

// Queued before live: a persistent QoS 1 session that reconnects while a publisher runs at
// full speed gets what was queued for it while away before anything published after, so it
// sees every message in publish order — across plain reconnects and broker restarts, 20 each.
// (Stock Aedes restores the subscriptions before it writes the queue: live messages overtake.)

const ROUNDS = 20
const TOPIC = 'gerrit/order'
// no cap on what an offline session keeps (limits.maxQueuedMessages: its own test): every message is counted, in order
const broker = await BrokerProcess.start({ users: USERS, acl: ACL, config: { limits: { maxQueuedMessages: 0 } } })
t.teardown(() => broker.stop())
const url = (): string => `mqtt://127.0.0.1:${broker.ports.mqtt}`

/** A QoS 1 publisher keeping 20 messages in flight, numbered across publishers. */
class Publisher {
  static next = 0
  readonly acknowledged: Set<number>
  #running = true
  #sending: Promise<void>

  constructor (readonly client: MqttClient, acknowledged: Set<number>) {
    this.acknowledged = acknowledged
    client.on('error', () => {})
    this.#sending = (async () => {
      while (this.#running && client.connected) {
        const batch = Array.from({ length: 20 }, () => ++Publisher.next)
        await Promise.all(batch.map(async id => {
          await client.publishAsync(TOPIC, String(id), { qos: 1 }).then(() => { acknowledged.add(id) }, () => {})
        }))
      }
    })()
  }

  static async start (acknowledged: Set<number>): Promise<Publisher> {
    return new Publisher(await connect(url(), { username: 'gerrit', password: USERS.gerrit }), acknowledged)
  }

  async stop (): Promise<void> {
    this.#running = false
    await Promise.race([this.#sending, sleep(3000)])
    this.client.end(true)
  }
}

/** What one reader saw: first receipts must come in publish order; repeats are redeliveries. */
class Reading {
  readonly seen = new Set<number>()
  readonly overtaken: string[] = []
  #highest = 0

  receive (id: number): void {
    if (this.seen.has(id)) return
    if (id < this.#highest) this.overtaken.push(`${id} after ${this.#highest}`)
    this.seen.add(id)
    this.#highest = Math.max(this.#highest, id)
  }

  async connect (clientId: string): Promise<MqttClient> {
    const reader = mqttConnect(url(), { clientId, clean: false, reconnectPeriod: 0, connectTimeout: 5000 })
    // attached before CONNACK: the replay starts right after it
    reader.on('message', (_topic, payload) => this.receive(Number(payload.toString())))
    await new Promise((resolve, reject) => { reader.once('connect', resolve); reader.once('error', reject) })
    return reader
  }
}

for (const restart of [false, true]) {
  const what = restart ? 'broker restarts' : 'plain reconnects'
  t.test(`a persistent session gets every message in publish order across ${ROUNDS} ${what}`, async t => {
    const clientId = restart ? 'order-reader-restart' : 'order-reader'
    const reading = new Reading()
    const first = await reading.connect(clientId)
    await first.subscribeAsync(TOPIC, { qos: 1 })
    await first.endAsync()

    const acknowledged = new Set<number>()
    let publisher = await Publisher.start(acknowledged)
    for (let round = 0; round < ROUNDS; round++) {
      const reader = await reading.connect(clientId)
      await sleep(100 + Math.random() * 200)
      await reader.endAsync()
      await sleep(50 + Math.random() * 150) // its queue grows meanwhile
      if (restart) {
        await publisher.stop()
        await broker.restart()
        publisher = await Publisher.start(acknowledged)
        await sleep(50 + Math.random() * 100)
      }
    }
    await publisher.stop()
    t.ok(acknowledged.size > ROUNDS * 100, `${acknowledged.size} messages acknowledged`)

    const reader = await reading.connect(clientId)
    t.teardown(() => reader.endAsync())
    await waitFor('every acknowledged message', () => [...acknowledged].every(id => reading.seen.has(id)), 60000).catch(() => {})
    t.same([...acknowledged].filter(id => !reading.seen.has(id)), [], 'every acknowledged message arrived')
    t.same(reading.overtaken.slice(0, 10), [], `no message arrived before an older one (${reading.overtaken.length} did)`)
  })
}
