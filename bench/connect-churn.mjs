// Connection churn against a used store, side by side with Mosquitto: what one CONNECT +
// DISCONNECT costs on a fresh store, after persistent sessions have had thousands of messages
// queued and cleaned up, and how long a new client waits for its CONNACK while one address
// opens and closes thousands of bare TCP connections (no MQTT bytes at all).
//
//   npm run bench:connect-churn -- [--cycles 500] [--sessions 10] [--queued 2000] [--bursts 2000] [--only firehose,mosquitto]
import { mkdtemp } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import mqttPacket from 'mqtt-packet'
import { fmt, median } from './lib/latency.mjs'
import { startFirehose, startMosquitto } from './lib/processes.mjs'

const { values: args } = parseArgs({
  options: {
    cycles: { type: 'string', default: '500' },
    sessions: { type: 'string', default: '10' },
    queued: { type: 'string', default: '2000' },
    bursts: { type: 'string', default: '2000' },
    only: { type: 'string' }
  }
})
const CYCLES = Number(args.cycles)
const SESSIONS = Number(args.sessions)
const QUEUED = Number(args.queued)
const BURSTS = Number(args.bursts)
const USERS = { infra: 'infra-secret' }

const generate = packet => mqttPacket.generate(packet)
const now = () => performance.now()

/** A raw MQTT connection: CONNECT sent, resolved at CONNACK, with its packets parsed. */
async function open (port, options) {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const parser = mqttPacket.parser()
  const packets = []
  const waiting = []
  parser.on('packet', packet => {
    packets.push(packet)
    for (const w of [...waiting]) if (w.test(packet)) { waiting.splice(waiting.indexOf(w), 1); w.resolve(packet) }
  })
  socket.on('data', chunk => parser.parse(chunk))
  socket.on('error', () => {})
  const until = test => new Promise(resolve => {
    const found = packets.find(test)
    if (found !== undefined) return resolve(found)
    waiting.push({ test, resolve })
  })
  await new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, keepalive: 0, ...options }))
  const connack = await until(p => p.cmd === 'connack')
  if (connack.returnCode !== 0) throw new Error(`CONNACK ${connack.returnCode}`)
  return { socket, packets, until, write: packet => socket.write(generate(packet)), end: () => new Promise(resolve => { socket.once('close', resolve); socket.end(generate({ cmd: 'disconnect' })) }) }
}

/** ms per CONNECT + CONNACK + DISCONNECT + close, one after the other. */
async function cycleCost (port, cycles) {
  const started = now()
  for (let i = 0; i < cycles; i++) {
    const c = await open(port, { clientId: `churn-${i}`, clean: true })
    await c.end()
  }
  return (now() - started) / cycles
}

/** Persistent sessions on `#` each get `queued` messages while offline, then take them and end clean. */
async function dirtyStore (port, credentials) {
  const ids = Array.from({ length: SESSIONS }, (_, i) => `persistent-${i}`)
  for (const clientId of ids) {
    const c = await open(port, { clientId, clean: false })
    c.write({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'churn/#', qos: 1 }] })
    await c.until(p => p.cmd === 'suback')
    await c.end()
  }
  const pub = await open(port, { clientId: 'churn-publisher', clean: true, ...credentials })
  for (let i = 1; i <= QUEUED; i++) {
    pub.write({ cmd: 'publish', topic: 'churn/x', payload: Buffer.alloc(200, 'x'), qos: 1, messageId: (i % 65535) + 1 })
    if (i % 100 === 0) await pub.until(p => p.cmd === 'puback' && p.messageId === (i % 65535) + 1)
  }
  await pub.end()
  for (const clientId of ids) {
    const c = await open(port, { clientId, clean: false })
    let got = 0
    await new Promise(resolve => {
      const check = () => {
        for (; got < c.packets.length; got++) {
          const p = c.packets[got]
          if (p.cmd === 'publish' && p.qos === 1) c.write({ cmd: 'puback', messageId: p.messageId })
        }
        if (c.packets.filter(p => p.cmd === 'publish').length >= QUEUED) resolve()
        else setTimeout(check, 20)
      }
      check()
    })
    await c.end()
    // ended clean: the session and whatever it kept are removed
    await (await open(port, { clientId, clean: true })).end()
  }
}

/** The CONNACK wait of one new client while `bursts` bare TCP connections open and close, and after. */
async function burstWait (port) {
  const waits = []
  const state = { bursting: true }
  const probe = (async () => {
    while (state.bursting) {
      const started = now()
      const c = await open(port, { clientId: `probe-${waits.length}`, clean: true })
      waits.push(now() - started)
      await c.end()
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  })()
  const burstStarted = now()
  // all at once, as a hostile client would
  await Promise.all(Array.from({ length: BURSTS }, () => new Promise(resolve => {
    const s = connect(port, '127.0.0.1', () => s.destroy())
    s.on('close', resolve)
    s.on('error', resolve)
  })))
  const burstMs = now() - burstStarted
  state.bursting = false
  await probe
  const after = now()
  await (await open(port, { clientId: 'after-burst', clean: true })).end()
  return { during: Math.max(...waits), median: median(waits), after: now() - after, burstMs }
}

async function run (label, broker, credentials) {
  const fresh = await cycleCost(broker.port, CYCLES)
  await dirtyStore(broker.port, credentials)
  const used = await cycleCost(broker.port, CYCLES)
  const burst = await burstWait(broker.port)
  const usedAfterBurst = await cycleCost(broker.port, CYCLES)
  const result = { label, fresh, used, usedAfterBurst, burst }
  console.error(JSON.stringify(result))
  return result
}

const results = []
const runs = new Set((args.only ?? 'firehose,mosquitto').split(','))
if (runs.has('firehose')) {
  const firehose = await startFirehose({ users: USERS, extra: { persistence: { dir: await mkdtemp(join(tmpdir(), 'firehose-bench-churn-')) } } })
  try {
    results.push(await run('Firehose', firehose, { username: 'infra', password: Buffer.from(USERS.infra) }))
  } finally {
    await firehose.stop()
  }
}
if (runs.has('mosquitto')) {
  const mosquitto = await startMosquitto({ persistence: true })
  try {
    results.push(await run('Mosquitto', mosquitto, {}))
  } finally {
    await mosquitto.stop()
  }
}

console.log(`\nconnect churn: ${CYCLES} CONNECT+DISCONNECT cycles; ${SESSIONS} persistent sessions × ${QUEUED} queued messages, then cleaned; ${BURSTS} bare TCP connect+close\n`)
console.log('| figure | ' + results.map(r => r.label).join(' | ') + ' |')
console.log('|---|' + results.map(() => '---|').join(''))
const row = (name, read) => console.log(`| ${name} | ${results.map(r => fmt(read(r))).join(' | ')} |`)
row('ms per cycle, fresh store', r => r.fresh)
row('ms per cycle, after the sessions', r => r.used)
row('ms per cycle, after the bursts', r => r.usedAfterBurst)
row('longest CONNACK wait during the bursts, ms', r => r.burst.during)
row('median CONNACK wait during the bursts, ms', r => r.burst.median)
row('CONNACK right after the bursts, ms', r => r.burst.after)
row('bursts took, ms', r => r.burst.burstMs)
const [f, m] = results
if (f !== undefined && m !== undefined) console.log(`\nFirehose: used/fresh ${fmt(f.used / f.fresh)}; fresh cycle / Mosquitto's ${fmt(f.fresh / m.fresh)}`)
