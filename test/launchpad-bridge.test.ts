import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ImapFlow } from 'imapflow'
import t from 'tap'
import { BridgeProcess } from './helpers/bridge-process.js'
import { BrokerProcess } from './helpers/broker-process.js'
import { Dovecot } from './helpers/dovecot.js'
import { matchesCatalogue } from './helpers/schemas.js'
import { MosquittoSub } from './helpers/mosquitto.js'
import { ACL, USERS } from './helpers/policy.js'
import { freePort } from './helpers/ports.js'
import { REPO } from './helpers/repo.js'
import { waitFor } from './helpers/wait.js'

// The Launchpad bridge against a real Dovecot, the real broker and mosquitto_sub. Mail is
// delivered with IMAP APPEND while the bridge idles, as an MTA would deliver it by LMTP.

const FIXTURES = join(REPO, 'packages/launchpad-bridge/test/fixtures')
const dir = await mkdtemp(join(tmpdir(), 'firehose-launchpad-'))
const broker = await BrokerProcess.start({ users: USERS, acl: ACL })
const metricsPort = await freePort()
const dovecot = await Dovecot.start({ port: await freePort(), user: 'lpmqtt', password: 'mail-secret' })
const sub = new MosquittoSub(['-h', '127.0.0.1', '-p', String(broker.ports.mqtt), '-i', 'launchpad-reader', '-c', '-q', '1', '-t', 'launchpad/#', '-v'])
const bridge = await BridgeProcess.write('launchpad', join(dir, 'launchpad-bridge.yaml'), {
  name: 'launchpad',
  mqtt: { urls: [`mqtt://127.0.0.1:${broker.ports.mqtt}`], username: 'launchpad', password: USERS.launchpad },
  outbox: { dir: join(dir, 'outbox') },
  backoff: { initial: 0.2, max: 1 },
  metrics: { host: '127.0.0.1', port: metricsPort },
  log: { level: 'debug' },
  imap: { host: '127.0.0.1', port: dovecot.port, security: 'plain', username: 'lpmqtt', password: 'mail-secret', recheckInterval: 2 }
})
t.teardown(async () => {
  sub.stop()
  await bridge.signal('SIGKILL')
  await dovecot.destroy()
  await broker.stop()
})

/** A second IMAP client: the mail system delivering, and the test looking at flags. */
async function mailbox<T> (work: (client: ImapFlow) => Promise<T>): Promise<T> {
  return await dovecot.session(work)
}
let counter = 0
/** Delivers a fixture, with a fresh Message-ID unless asked to keep it. */
async function deliver (name: string, keepId = false): Promise<string> {
  let raw = await readFile(join(FIXTURES, name), 'utf8')
  const id = `<delivered-${++counter}-${Date.now()}@firehose.test>`
  if (!keepId) raw = raw.replace(/^Message-I[dD]:(?:.*\n)(?:[ \t].*\n)*/m, `Message-Id: ${id}\n`)
  await mailbox(async client => { await client.append('INBOX', raw) })
  return keepId ? '' : id
}
async function flagsOf (messageId: string, folder = 'INBOX'): Promise<string[] | undefined> {
  return await mailbox(async client => {
    await client.mailboxOpen(folder)
    const uids = (await client.search({ header: { 'message-id': messageId } }, { uid: true })) || []
    if (uids.length === 0) return undefined
    const m = await client.fetchOne(String(uids[0]), { flags: true }, { uid: true })
    return m === false ? undefined : [...(m.flags ?? [])]
  })
}
type Message = { topic: string, payload: Record<string, unknown> }
const messages = (): Message[] => sub.lines.map(l => ({ topic: l.slice(0, l.indexOf(' ')), payload: JSON.parse(l.slice(l.indexOf(' ') + 1)) as Record<string, unknown> }))
const byId = (id: string): Message[] => messages().filter(m => m.payload['message-id'] === id)

await bridge.start()
await waitFor('the bridge to watch the mailbox', () => bridge.logs.some(l => l.event === 'launchpad.watching'))

t.test('bug mail arrives decoded with every task; other mail is untouched; an unparseable one is moved aside', async t => {
  const fresh = await deliver('launchpad-new-bug.eml')
  const expired = await deliver('launchpad-status-expired.eml')
  const two = await deliver('synthetic-two-projects.eml')
  const other = await deliver('not-launchpad.eml')
  const bad = await deliver('synthetic-unparseable.eml')
  await waitFor('four messages', () => messages().length >= 4, 20000)
  t.same(byId(fresh).map(m => m.topic), ['launchpad/qemu/bug/1894836'])
  t.same(byId(expired).map(m => m.topic), ['launchpad/qemu/bug/1295587'])
  t.same(byId(two).map(m => m.topic), ['launchpad/nova/bug/2012345', 'launchpad/neutron/bug/2012345'], 'once under each project')
  const nova = byId(two)[0]!.payload
  t.equal((nova.tasks as unknown[]).length, 2, 'every task')
  t.match(String(nova.body), /Status: New => Triaged/, 'decoded body')
  t.match(byId(expired)[0]!.payload, { status: 'Expired', commenters: ['alvarezviu', 'aslopes', 'crobinso', 'dennis123321', 'janitor'] })
  await waitFor('the processed mail flagged \\Seen', async () => (await flagsOf(two))?.includes('\\Seen') === true)
  t.same(await flagsOf(other), [], 'other mail: no flag set, still in INBOX')
  await waitFor('the unparseable mail in Launchpad-Failed', async () => (await flagsOf(bad, 'Launchpad-Failed')) !== undefined)
  t.equal(await flagsOf(bad), undefined, 'and no longer in INBOX')
  t.ok(bridge.logs.some(l => l.event === 'bridge.input-rejected' && l.reason === 'unparseable-mail'), 'logged and counted')
  await new Promise(resolve => setTimeout(resolve, 2500)) // a recheck passes: nothing is fetched twice
  t.equal(messages().length, 4)
  t.equal(bridge.logs.filter(l => l.event === 'launchpad.other-mail').length, 1, 'the other mail was fetched once, not at every recheck')
})

t.test('Dovecot killed and restarted mid-run: every mail once', async t => {
  const before = messages().length
  const a = await deliver('launchpad-new-bug.eml')
  await waitFor('a', () => byId(a).length === 1, 20000)
  await dovecot.kill()
  await dovecot.restart()
  const b = await deliver('launchpad-status-expired.eml')
  const c = await deliver('launchpad-new-bug.eml')
  await waitFor('b and c', () => byId(b).length === 1 && byId(c).length === 1, 30000)
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.equal(messages().length, before + 3, 'exactly once each')
  t.ok(bridge.logs.some(l => l.event === 'launchpad.mailbox-lost'), 'the bridge noticed and reconnected')
})

t.test('broker stopped mid-run: mail is not marked until the broker has it, then published once', async t => {
  const before = messages().length
  await broker.signal('SIGTERM')
  const d = await deliver('launchpad-status-expired.eml')
  await waitFor('the mail in the outbox', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(r => r.text()).catch(() => '')
    return /firehose_bridge_outbox_depth\{bridge="launchpad"\} 1\b/.test(res)
  }, 20000)
  t.same(await flagsOf(d), [], 'not marked processed while the broker is away')
  await broker.launch()
  await waitFor('d', () => byId(d).length === 1, 30000)
  await waitFor('d marked \\Seen', async () => (await flagsOf(d))?.includes('\\Seen') === true, 20000)
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.equal(messages().length, before + 1)
})

t.test('bridge SIGKILLed between publishing and marking: the mail is published once', async t => {
  const before = messages().length
  await broker.signal('SIGTERM') // the mail reaches the outbox but cannot be acknowledged
  const e = await deliver('launchpad-new-bug.eml')
  await waitFor('the mail in the outbox', async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(r => r.text()).catch(() => '')
    return /firehose_bridge_outbox_depth\{bridge="launchpad"\} 1\b/.test(res)
  }, 20000)
  await bridge.signal('SIGKILL')
  await broker.launch()
  await bridge.start()
  await waitFor('e', () => byId(e).length === 1, 30000)
  await waitFor('e marked \\Seen', async () => (await flagsOf(e))?.includes('\\Seen') === true, 20000)
  await new Promise(resolve => setTimeout(resolve, 2500))
  t.equal(messages().length, before + 1, 'once, though the mail was read twice')
  t.ok(bridge.logs.some(l => l.event === 'launchpad.published' && l.messageId === e && l.published === 0), 'the second reading found it already published')
})

t.test('everything the bridge published matches the schema catalogue', async t => {
  await matchesCatalogue(t, sub.lines, 'the Launchpad notifications')
})

t.test('a mail over imap.maxMailBytes (50 MiB against the 10 MiB default) goes to Launchpad-Failed unfetched, counted, while normal mail flows', async t => {
  // restarted first, so that its IMAP session's byte count (logged by Dovecot when it ends) covers this test alone
  await bridge.signal('SIGKILL')
  const since = bridge.logs.length
  await bridge.start()
  await waitFor('the bridge to watch the mailbox again', () => bridge.logs.slice(since).some(l => l.event === 'launchpad.watching'))
  const fixture = await readFile(join(FIXTURES, 'launchpad-new-bug.eml'), 'utf8')
  const hugeId = `<huge-${Date.now()}@firehose.test>`
  const line = `${'x'.repeat(76)}\n`
  const huge = fixture.replace(/^Message-I[dD]:(?:.*\n)(?:[ \t].*\n)*/m, `Message-Id: ${hugeId}\n`) + line.repeat(Math.ceil(50 * 1024 * 1024 / line.length))
  const before = messages().length
  const first = await deliver('launchpad-status-expired.eml')
  await mailbox(async client => { await client.append('INBOX', huge) })
  const after = await deliver('synthetic-two-projects.eml')
  await waitFor('the mail on either side published', () => byId(first).length === 1 && byId(after).length === 2, 30000)
  await waitFor('the large mail in Launchpad-Failed', async () => (await flagsOf(hugeId, 'Launchpad-Failed')) !== undefined, 30000)
  t.equal(await flagsOf(hugeId), undefined, 'no longer in INBOX')
  t.equal(messages().length, before + 3, 'nothing published from it')
  t.match(bridge.logs.find(l => l.event === 'bridge.input-rejected' && l.reason === 'mail-too-large'), { messageId: hugeId, maxMailBytes: 10 * 1024 * 1024, folder: 'Launchpad-Failed' })
  t.ok((bridge.logs.find(l => l.reason === 'mail-too-large')?.size as number) > 50 * 1024 * 1024, 'its size logged')
  const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`).then(async r => await r.text())
  t.match(metrics.split('\n').find(l => l.startsWith('firehose_bridge_events_failed_total{') && l.includes('reason="mail-too-large"')), / 1$/, 'counted once')
  // the session's bytes sent by Dovecot, logged when the connection ends: far less than the mail
  const seen = dovecot.logs.length
  await bridge.signal('SIGKILL')
  const ended = await waitFor('Dovecot to log the session\'s end', () => dovecot.logs.slice(seen).find(l => /imap\(lpmqtt\).*out=\d+/.test(l)), 10000)
  const out = Number(/out=(\d+)/.exec(ended)![1])
  t.ok(out < 1024 * 1024, `the bridge's session took ${out} bytes from Dovecot: the large mail's body was not fetched`)
})
