import { readFileSync } from 'node:fs'
import t from 'tap'
import { parseMail, parseTask } from '../src/parse-mail.js'

const mail = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url))

t.test('a real new-bug mail relayed by a mailing list', async t => {
  const v = await parseMail(mail('launchpad-new-bug.eml'), 'launchpad')
  if (v.kind !== 'launchpad') throw new Error(v.kind)
  t.equal(v.messages.length, 1)
  const [m] = v.messages
  t.equal(m!.topic, 'launchpad/qemu/bug/1894836')
  t.match(m!.payload, {
    project: 'qemu',
    'event-type': 'bug',
    'bug-number': '1894836',
    status: 'New',
    importance: 'Undecided',
    assignee: 'None',
    commenters: ['jwillikers'],
    tags: ['hvf'],
    'bug-reporter': 'Jordan Williams (jwillikers)',
    'bug-modifier': 'Jordan Williams (jwillikers)',
    subject: '[Bug 1894836] [NEW] kernel panic using hvf with CPU passthrough',
    'message-id': '<159956768761.20174.3940381536855370035.malonedeb@gac.canonical.com>'
  })
  t.notMatch(String(m!.payload.body), /=3D|=\n/, 'the quoted-printable body is decoded')
})

t.test('a direct mail with two task headers, folded, quoted-printable', async t => {
  const v = await parseMail(mail('launchpad-synthetic-openstack-direct.eml'), 'launchpad')
  if (v.kind !== 'launchpad') throw new Error(v.kind)
  t.equal(v.messages.length, 1, 'both tasks are nova: one message')
  const payload = v.messages[0]!.payload
  t.same(payload.tasks, [
    { product: 'nova', status: 'Triaged', importance: 'Medium', assignee: 'None' },
    { product: 'nova', productseries: '2024.1', status: 'New', importance: 'Undecided', assignee: 'None' }
  ], 'every task, unfolded (the original kept only the first)')
  t.match(payload, { status: 'Triaged', commenters: ['jane-dev', 'ops-person'], subject: '[Bug 2012345] Re: scheduler ignores disabled compute services after cache warm-up' })
  t.match(String(payload.body), /Status: New => Triaged/, 'decoded: =3D became =')
  t.match(payload, { 'bug-information-type': 'Public', 'message-for': 'lpmqtt' }, 'the other X-Launchpad-* headers')
})

t.test('base64 in ISO-8859-1, RFC 2047 reporter, modifier and subject', async t => {
  const v = await parseMail(mail('synthetic-encoded-base64-latin1.eml'), 'launchpad')
  if (v.kind !== 'launchpad') throw new Error(v.kind)
  const payload = v.messages[0]!.payload
  t.equal(v.messages[0]!.topic, 'launchpad/nova/bug/2023456')
  t.match(String(payload.body), /^Le planificateur choisit un hôte désactivé\. Reproduit sur «master»\./, 'base64 and charset decoded')
  t.equal(payload['bug-reporter'], 'José García (jgarcia)')
  t.equal(payload['bug-modifier'], 'Zoë Ångström (zoe)')
  t.equal(payload.subject, '[Bug 2023456] Re: hôte désactivé')
  t.same(payload.tags, ['scheduler', 'i18n'])
  t.match(payload, { status: 'Confirmed', importance: 'High', assignee: 'jgarcia', 'bug-number': '2023456' })
})

t.test('tasks naming several projects: one message per project', async t => {
  const v = await parseMail(mail('synthetic-two-projects.eml'), 'launchpad')
  if (v.kind !== 'launchpad') throw new Error(v.kind)
  t.same(v.messages.map(m => m.topic), ['launchpad/nova/bug/2012345', 'launchpad/neutron/bug/2012345'])
  t.same(v.messages.map(m => m.payload.status), ['Triaged', 'New'])
  t.not(v.messages[0]!.key, v.messages[1]!.key)
})

t.test('other mail, and Launchpad mail that cannot be understood', async t => {
  t.same(await parseMail(mail('not-launchpad.eml'), 'launchpad'), { kind: 'other' })
  t.match(await parseMail(mail('synthetic-unparseable.eml'), 'launchpad'), { kind: 'failed', reason: /no \[Bug N\]/ })
})

t.test('distribution tasks and a missing event type', async t => {
  t.same(parseTask('distribution=ubuntu; sourcepackage=nova; status=New; importance=Low; assignee=None;'),
    { distribution: 'ubuntu', sourcepackage: 'nova', status: 'New', importance: 'Low', assignee: 'None' })
  const raw = Buffer.from('X-Generated-By: Launchpad (canonical.com)\nX-Launchpad-Bug: distribution=ubuntu; sourcepackage=nova; status=New;\nSubject: [Bug 7] x\nMessage-Id: <a@b>\n\nbody\n')
  const v = await parseMail(raw, 'launchpad')
  if (v.kind !== 'launchpad') throw new Error(v.kind)
  t.equal(v.messages[0]!.topic, 'launchpad/nova', 'filled left to right, stopping at the missing event type')
})

t.test('an X-Launchpad-Project (or -Status, ...) header does not override the message\'s own project', async t => {
  const raw = mail('launchpad-new-bug.eml').toString('latin1').replace(/\r?\nX-Launchpad-Bug:/, '\nX-Launchpad-Project: other\nX-Launchpad-Status: Forged\nX-Launchpad-Bug:')
  const v = await parseMail(Buffer.from(raw, 'latin1'), 'launchpad')
  if (v.kind !== 'launchpad') throw new Error(v.kind)
  t.equal(v.messages[0]!.topic, 'launchpad/qemu/bug/1894836')
  t.equal(v.messages[0]!.payload.project, 'qemu', 'the project of the topic')
  t.equal(v.messages[0]!.payload.status, 'New', 'the task\'s status')
})
