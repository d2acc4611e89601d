import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ImapFlow } from 'imapflow'
import t from 'tap'
import { BridgeProcess } from './helpers/bridge-process.js'
import { BrokerProcess } from './helpers/broker-process.js'
import { makeCerts } from './helpers/certs.js'
import { Dovecot } from './helpers/dovecot.js'
import { MosquittoSub } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { freePort } from './helpers/ports.js'
import { REPO } from './helpers/repo.js'
import { waitFor } from './helpers/wait.js'

// The Launchpad bridge's other IMAP settings against a real Dovecot with a private CA:
// implicit TLS with `move`, STARTTLS with `delete` on another folder, mail waiting before start.

const FIXTURES = join(REPO, 'packages/launchpad-bridge/test/fixtures')
const dir = await mkdtemp(join(tmpdir(), 'firehose-launchpad-options-'))
const certs = makeCerts(join(dir, 'certs'))
const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
const dovecot = await Dovecot.start({ port: await freePort(), user: 'lpmqtt', password: 'mail-secret', tls: { cert: certs.cert, key: certs.key, tlsPort: await freePort() } })
const ca = await readFile(certs.ca)
const sub = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-q', '1', '-t', 'launchpad/#', '-v'])
await writeFile(join(dir, 'imap-password'), 'mail-secret\n')
let bridge: BridgeProcess | undefined
t.teardown(async () => {
  sub.stop()
  await bridge?.signal('SIGKILL')
  await dovecot.destroy()
  await broker.stop()
})

async function mailbox<T> (work: (client: ImapFlow) => Promise<T>): Promise<T> {
  return await dovecot.session(work, ca)
}
let counter = 0
async function deliver (name: string, folder: string): Promise<string> {
  const id = `<options-${++counter}-${Date.now()}@firehose.test>`
  const raw = (await readFile(join(FIXTURES, name), 'utf8')).replace(/^Message-I[dD]:(?:.*\n)(?:[ \t].*\n)*/m, `Message-Id: ${id}\n`)
  await mailbox(async client => {
    if (!(await client.list()).some(m => m.path === folder)) await client.mailboxCreate(folder)
    await client.append(folder, raw)
  })
  return id
}
async function present (messageId: string, folder: string): Promise<boolean> {
  return await mailbox(async client => {
    if (!(await client.list()).some(m => m.path === folder)) return false
    await client.mailboxOpen(folder)
    return ((await client.search({ header: { 'message-id': messageId } }, { uid: true })) || []).length > 0
  })
}
const topicsOf = (id: string): string[] => sub.lines.filter(l => l.includes(JSON.stringify(id).slice(1, -1))).map(l => l.slice(0, l.indexOf(' ')))

function bridgeConfig (label: string, imap: Record<string, unknown>): Record<string, unknown> {
  return {
    name: 'launchpad',
    mqtt: { urls: [`mqtt://127.0.0.1:${broker.ports.mqtt}`], username: 'launchpad', password: USERS.launchpad, clientId: `launchpad-${label}` },
    outbox: { dir: join(dir, `outbox-${label}`) },
    backoff: { initial: 0.2, max: 1 },
    log: { level: 'debug' },
    imap: { host: '127.0.0.1', username: 'lpmqtt', ca: certs.ca, recheckInterval: 2, ...imap }
  }
}

t.test('implicit TLS, processed mail moved to a folder', async t => {
  bridge = await BridgeProcess.write('launchpad', join(dir, 'tls.yaml'), bridgeConfig('tls', {
    port: dovecot.tlsPort, security: 'tls', password: 'mail-secret', processed: { action: 'move', folder: 'Done' }
  }))
  await bridge.start()
  await waitFor('the bridge to watch the mailbox', () => bridge!.logs.some(l => l.event === 'launchpad.watching'))
  const id = await deliver('launchpad-new-bug.eml', 'INBOX')
  await waitFor('published', () => topicsOf(id).length === 1, 20000)
  t.same(topicsOf(id), ['launchpad/qemu/bug/1894836'])
  await waitFor('moved to Done', async () => await present(id, 'Done'), 20000)
  t.notOk(await present(id, 'INBOX'), 'no longer in INBOX')
  await bridge.signal('SIGTERM')
})

t.test('STARTTLS on another folder, password from a file, processed mail deleted; mail waiting before start', async t => {
  const waiting = await deliver('synthetic-encoded-base64-latin1.eml', 'Bugs')
  bridge = await BridgeProcess.write('launchpad', join(dir, 'starttls.yaml'), bridgeConfig('starttls', {
    port: dovecot.port, security: 'starttls', passwordFile: join(dir, 'imap-password'), folder: 'Bugs', processed: { action: 'delete' }
  }))
  await bridge.start()
  await waitFor('the waiting mail published', () => topicsOf(waiting).length === 1, 20000)
  const line = sub.lines.find(l => l.includes(waiting.slice(1, -1)))!
  t.match(JSON.parse(line.slice(line.indexOf(' ') + 1)), { 'bug-reporter': 'José García (jgarcia)', body: /hôte désactivé/ }, 'decoded on the way through')
  const live = await deliver('launchpad-status-expired.eml', 'Bugs')
  await waitFor('the live mail published', () => topicsOf(live).length === 1, 20000)
  await waitFor('both deleted', async () => !(await present(waiting, 'Bugs')) && !(await present(live, 'Bugs')), 20000)
  t.notOk(await present(live, 'INBOX'))
  await bridge.signal('SIGTERM')
})

t.test('every IMAP login was encrypted', async t => {
  const logins = dovecot.logs.filter(l => l.includes('Login: user=<lpmqtt>'))
  t.ok(logins.length >= 4, `${logins.length} logins`)
  t.same(logins.filter(l => !/, TLS[,:]/.test(l)), [], 'none in clear text')
})
