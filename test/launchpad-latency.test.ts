import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BridgeProcess } from './helpers/bridge-process.js'
import { BrokerProcess } from './helpers/broker-process.js'
import { Dovecot } from './helpers/dovecot.js'
import { MosquittoSub } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { freePort } from './helpers/ports.js'
import { REPO } from './helpers/repo.js'
import { sleep, waitFor } from './helpers/wait.js'

// New mail is published within seconds of delivery, whether the bridge is busy with a batch or
// idle — never left for the periodic re-check, which is set far away here (10 minutes).

const BOUND_MS = 5000
const FIXTURES = join(REPO, 'packages/launchpad-bridge/test/fixtures')
const dir = await mkdtemp(join(tmpdir(), 'firehose-launchpad-latency-'))
const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
const dovecot = await Dovecot.start({ port: await freePort(), user: 'lpmqtt', password: 'mail-secret' })
const sub = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-t', 'launchpad/#', '-v'])
const bridge = await BridgeProcess.write('launchpad', join(dir, 'launchpad-bridge.yaml'), {
  name: 'launchpad',
  mqtt: { urls: [`mqtt://127.0.0.1:${broker.ports.mqtt}`], username: 'launchpad', password: USERS.launchpad },
  outbox: { dir: join(dir, 'outbox') },
  log: { level: 'debug' },
  imap: { host: '127.0.0.1', port: dovecot.port, security: 'plain', username: 'lpmqtt', password: 'mail-secret', recheckInterval: 600 }
})
t.teardown(async () => {
  sub.stop()
  await bridge.signal('SIGKILL')
  await dovecot.destroy()
  await broker.stop()
})

let counter = 0
async function deliver (): Promise<string> {
  const id = `<latency-${++counter}-${Date.now()}@firehose.test>`
  const raw = (await readFile(join(FIXTURES, 'launchpad-new-bug.eml'), 'utf8')).replace(/^Message-I[dD]:(?:.*\n)(?:[ \t].*\n)*/m, `Message-Id: ${id}\n`)
  await dovecot.session(async client => { await client.append('INBOX', raw) })
  return id
}
const published = (id: string): boolean => sub.lines.some(l => l.includes(id))

await bridge.start()
await waitFor('the bridge to watch the mailbox', () => bridge.logs.some(l => l.event === 'launchpad.watching'))

t.test('mail delivered while a batch is being processed is published within seconds', async t => {
  const batch = await Promise.all(Array.from({ length: 8 }, async () => await deliver()))
  await waitFor('the batch to start', () => batch.some(published), 20000)
  const late = await deliver()
  const delivered = Date.now()
  await waitFor(`the mail delivered mid-batch, within ${BOUND_MS} ms`, () => published(late), BOUND_MS)
  t.pass(`published ${Date.now() - delivered} ms after delivery`)
  await waitFor('the whole batch', () => batch.every(published), 20000)
})

t.test('mail delivered soon after the last one, while the bridge is idle, is published within seconds', async t => {
  for (const pause of [1000, 3000]) {
    const first = await deliver()
    await waitFor('the first mail', () => published(first), 20000)
    await sleep(pause)
    const next = await deliver()
    const delivered = Date.now()
    await waitFor(`a mail delivered ${pause} ms after the last, within ${BOUND_MS} ms`, () => published(next), BOUND_MS)
    t.pass(`after a ${pause} ms pause: published ${Date.now() - delivered} ms after delivery`)
  }
})
