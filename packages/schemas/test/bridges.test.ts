import { existsSync, readdirSync, readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { parseMail } from '../../launchpad-bridge/src/parse-mail.js'
import { requestSchema, topicFor, type AnsibleEvent } from '../../ansible-bridge/src/events.js'
import { Catalogue, type Verdict } from '../src/index.js'

// What the Launchpad and Ansible bridges publish, run through their own code, checked against
// the catalogue: every payload they make from the fixtures is valid on its topic, and payloads
// they would never make are refused.

const catalogue = await Catalogue.load()
/** The shared fixtures beside the repository (absent from a bare clone). */
const SHARED = new URL('../../../../shared/fixtures/', import.meta.url)

/** Valid, or a failure that prints the schema's errors. */
function checkValid (t: Test, verdict: Verdict, what: string): void {
  t.ok(verdict.valid, what, verdict.valid === false ? { errors: verdict.errors } : {})
}

/** Refused, with an error naming `path` (the instance path, or the missing property). */
function checkRefused (t: Test, verdict: Verdict, path: RegExp, what: string): void {
  t.equal(verdict.valid, false, `${what}: refused`)
  const errors = verdict.valid === false ? verdict.errors : []
  t.ok(errors.some(e => path.test(e)), `${what}: an error names ${String(path)}`, { errors })
}

// --- Launchpad -----------------------------------------------------------------------------

const LAUNCHPAD_FIXTURES = new URL('../../launchpad-bridge/test/fixtures/', import.meta.url)
const LAUNCHPAD_DIRS = [LAUNCHPAD_FIXTURES, new URL('launchpad/', SHARED)]
const LAUNCHPAD_BASE = 'launchpad' // the bridge's default imap.topicBase

/** What MailboxSource publishes for a mail: each message's topic and its payload as JSON. */
async function launchpadPublishes (raw: Buffer): Promise<Array<{ topic: string, payload: Buffer }> | undefined> {
  const verdict = await parseMail(raw, LAUNCHPAD_BASE)
  if (verdict.kind !== 'launchpad') return undefined
  return verdict.messages.map(m => ({ topic: m.topic, payload: Buffer.from(JSON.stringify(m.payload)) }))
}

for (const dir of LAUNCHPAD_DIRS) {
  t.test(`Launchpad: every message the bridge publishes from the mails in ${dir.pathname} is valid on its topic`, { skip: existsSync(dir) ? false : `${dir.pathname} is absent` }, async t => {
    const files = readdirSync(dir).filter(f => f.endsWith('.eml')).sort()
    let published = 0
    for (const file of files) {
      const messages = await launchpadPublishes(readFileSync(new URL(file, dir)))
      if (messages === undefined) {
        t.comment(`${file}: not published (other mail, or refused by the bridge)`)
        continue
      }
      for (const { topic, payload } of messages) {
        t.equal(catalogue.idFor(topic), 'launchpad.bug-notification', `${file}: ${topic} is a Launchpad topic`)
        checkValid(t, catalogue.validate(topic, payload), `${file} on ${topic}`)
        published++
      }
    }
    t.comment(`${published} Launchpad payloads from ${files.length} mails`)
    t.ok(published > 0, 'the fixtures give messages to check')
  })
}

t.test('Launchpad: every key of lpmqtt\'s example payload is one Firehose publishes, of the same type', { skip: existsSync(new URL('launchpad/lpmqtt-payload-example.json', SHARED)) ? false : 'the shared fixtures are absent' }, async t => {
  const example = JSON.parse(readFileSync(new URL('launchpad/lpmqtt-payload-example.json', SHARED), 'utf8')) as { topic: string, payload: Record<string, unknown> }
  const [published] = (await launchpadPublishes(readFileSync(new URL('launchpad-new-bug.eml', LAUNCHPAD_FIXTURES))))!
  t.equal(catalogue.idFor(example.topic), 'launchpad.bug-notification', `${example.topic} is a Launchpad topic`)
  // lpmqtt's payload lacked tasks, message-id, subject and date: its values laid over one of ours
  checkValid(t, catalogue.validate(example.topic, Buffer.from(JSON.stringify({ ...JSON.parse(published!.payload.toString()), ...example.payload }))), 'lpmqtt\'s values in a Firehose payload')
})

t.test('Launchpad: the sparse shapes the parser makes (no event type, no date, no tasks) are valid too', async t => {
  const mails = {
    'a distribution task, no event type, no Date, no reporter': 'X-Generated-By: Launchpad (canonical.com)\nX-Launchpad-Bug: distribution=ubuntu; sourcepackage=nova; status=New;\nSubject: [Bug 7] x\nMessage-Id: <a@b>\n\nbody\n',
    'no X-Launchpad-Bug header, no Message-ID, no body': 'X-Launchpad-Notification-Type: bug\nX-Launchpad-Bug-Private: yes\nSubject: Re: [Bug 8] y\n\n'
  }
  for (const [what, raw] of Object.entries(mails)) {
    const messages = await launchpadPublishes(Buffer.from(raw))
    t.equal(messages?.length, 1, what)
    for (const { topic, payload } of messages ?? []) {
      t.equal(catalogue.idFor(topic), 'launchpad.bug-notification', `${what}: ${topic} is a Launchpad topic`)
      checkValid(t, catalogue.validate(topic, payload), what)
    }
  }
})

t.test('Launchpad: payloads the bridge never makes are refused', async t => {
  const [message] = (await launchpadPublishes(readFileSync(new URL('launchpad-new-bug.eml', LAUNCHPAD_FIXTURES))))!
  const good = JSON.parse(message!.payload.toString()) as Record<string, unknown>
  const { 'bug-number': _bugNumber, ...noBugNumber } = good
  const broken: Array<[string, Record<string, unknown>, RegExp]> = [
    ['missing its bug number', noBugNumber, /^\(payload\) must have required property 'bug-number'/],
    ['a bug number that is a number', { ...good, 'bug-number': 1894836 }, /^\/bug-number must be string/],
    ['a bug number that is not digits', { ...good, 'bug-number': '#1894836' }, /^\/bug-number must match pattern/],
    ['a subject without [Bug N]', { ...good, subject: 'kernel panic' }, /^\/subject must match pattern/],
    ['tags as one string', { ...good, tags: 'hvf arm' }, /^\/tags must be array/],
    ['a tag holding a space', { ...good, tags: ['hvf arm'] }, /^\/tags\/0 must match pattern/],
    ['a task value that is not a string', { ...good, tasks: [{ product: 'qemu', private: false }] }, /^\/tasks\/0\/private must be string/],
    ['a date that is not toISOString()', { ...good, date: 'Tue, 08 Sep 2020 12:21:27 -0000' }, /^\/date must match pattern/],
    ['an extra field that is not a header value', { ...good, score: 3 }, /^\/score must be string,null/]
  ]
  for (const [what, payload, path] of broken) checkRefused(t, catalogue.validate(message!.topic, Buffer.from(JSON.stringify(payload))), path, what)
})

// --- Ansible -------------------------------------------------------------------------------

const ANSIBLE_BASE = 'ansible' // the bridge's default ansible.topicBase
const KIND_SCHEMA = { start: 'ansible.start', task: 'ansible.task', stats: 'ansible.stats', finish: 'ansible.finish' } as const

const ORIGINAL_EVENTS = new URL('../../ansible-bridge/test/fixtures/original-plugin-events.jsonl', import.meta.url)

/** The original plugin's recorded events: its topic (playbooks/, tasks/ spellings) tells the kind. */
function originalEvents (file = ORIGINAL_EVENTS): unknown[] {
  return readFileSync(file, 'utf8')
    .split('\n').filter(l => l.trim() !== '').map((line, i) => {
      const { topic, payload } = JSON.parse(line) as { topic: string, payload: unknown }
      const kind = /\/action\/start$/.test(topic) ? 'start' : /\/tasks?\//.test(topic) ? 'task' : /\/stats\//.test(topic) ? 'stats' : /\/action\/finish\//.test(topic) ? 'finish' : undefined
      if (kind === undefined) throw new Error(`original-plugin-events.jsonl:${i + 1}: what kind is ${topic}?`)
      return { id: `original/${i}`, kind, payload }
    })
}

/** One run as plugin/callback/firehose.py sends it (its payload fields, seven counts, a no_log result). */
function pluginRun (): unknown[] {
  const common = { host: 'bastion.example.org', session: '4a3e1c2e-ab12-11ef-9c1d-0242ac120002', playbook_name: 'webservers', playbook_id: '0b7e4a34-5d0c-4f4b-9f57-6f3f6f0b1c2d' }
  return [
    { kind: 'start', payload: { ...common, status: 'OK', ansible_type: 'start' } },
    { kind: 'task', payload: { ...common, status: 'OK', ansible_type: 'task', ansible_task: 'TASK: nginx : install', ansible_host: 'web01.example.org', ansible_result: { changed: true, rc: 0, stdout_lines: [], invocation: { module_args: { name: 'nginx' } } } } },
    { kind: 'task', payload: { ...common, status: 'SKIPPED', ansible_type: 'task', ansible_task: 'TASK: secrets', ansible_host: 'web01.example.org', ansible_result: { censored: "the output has been hidden due to the fact that 'no_log: true' was specified for this result", _ansible_no_log: true } } },
    { kind: 'task', payload: { ...common, status: 'UNREACHABLE', ansible_type: 'task', ansible_task: 'TASK: Gathering Facts', ansible_host: 'web02.example.org', ansible_result: { unreachable: true, msg: 'ssh: connect to host web02 port 22: Connection refused' } } },
    { kind: 'stats', payload: { ...common, ansible_host: 'web01.example.org', stats: { ok: 2, changed: 1, unreachable: 0, failures: 0, skipped: 1, rescued: 0, ignored: 0 } } },
    { kind: 'stats', payload: { ...common, ansible_host: 'web02.example.org', stats: { ok: 0, changed: 0, unreachable: 1, failures: 0, skipped: 0, rescued: 0, ignored: 0 } } },
    { kind: 'finish', payload: { ...common, status: 'FAILED' } }
  ].map((e, i) => ({ id: `${common.playbook_id}/${i + 1}`, ...e }))
}

/** What the receiver publishes for a request: its schema's output, topicFor, each payload as JSON. */
function ansiblePublishes (events: unknown[]): Array<{ event: AnsibleEvent, topic: string, payload: Buffer }> {
  return requestSchema.parse({ events }).events.map(event => ({ event, topic: topicFor(event, ANSIBLE_BASE), payload: Buffer.from(JSON.stringify(event.payload)) }))
}

t.test('Ansible: every event the receiver publishes from the fixtures is valid on its topic', async t => {
  const shared = new URL('ansible/original-plugin-events.jsonl', SHARED)
  const sources: Array<[string, unknown[]]> = [
    [ORIGINAL_EVENTS.pathname, originalEvents()],
    ...(existsSync(shared) ? [[shared.pathname, originalEvents(shared)] as [string, unknown[]]] : []),
    ['a run as plugin/callback/firehose.py sends it', pluginRun()]
  ]
  for (const [source, events] of sources) {
    const published = ansiblePublishes(events)
    for (const { event, topic, payload } of published) {
      t.equal(catalogue.idFor(topic), KIND_SCHEMA[event.kind], `${source}: ${topic} is on the ${KIND_SCHEMA[event.kind]} filter`)
      checkValid(t, catalogue.validate(topic, payload), `${source}: ${event.kind} on ${topic}`)
    }
    t.comment(`${published.length} Ansible payloads from ${source}`)
    t.same(new Set(published.map(p => p.event.kind)), new Set(['start', 'task', 'stats', 'finish']), `${source}: every kind`)
  }
})

t.test('Ansible: payloads the receiver refuses are refused by the schemas too', async t => {
  const [start, task, stats, finish] = ansiblePublishes(originalEvents()).map(p => ({ kind: p.event.kind, topic: p.topic, payload: JSON.parse(p.payload.toString()) as Record<string, unknown> }))
  const { playbook_id: _id, ...startWithoutId } = start!.payload
  const broken: Array<[string, { kind: string, topic: string }, Record<string, unknown>, RegExp]> = [
    ['a start without playbook_id', start!, startWithoutId, /^\(payload\) must have required property 'playbook_id'/],
    ['a start whose status is not OK', start!, { ...start!.payload, status: 'FAILED' }, /^\/status must be equal to constant/],
    ['a task whose status is not one of the four', task!, { ...task!.payload, status: 'CHANGED' }, /^\/status must be equal to one of the allowed values/],
    ['a task on a host holding /', task!, { ...task!.payload, ansible_host: 'a/b' }, /^\/ansible_host must match pattern/],
    ['a task whose result is a JSON string', task!, { ...task!.payload, ansible_result: '{"rc":0}' }, /^\/ansible_result must be object/],
    ['a task with a playbook id that is not a UUID', task!, { ...task!.payload, playbook_id: '../../x' }, /^\/playbook_id must match pattern/],
    ['stats with a negative count', stats!, { ...stats!.payload, stats: { ok: 13, skipped: -1 } }, /^\/stats\/skipped must be >= 0/],
    ['stats with a fractional count', stats!, { ...stats!.payload, stats: { ok: 1.5 } }, /^\/stats\/ok must be integer/],
    ['a finish whose status is SKIPPED', finish!, { ...finish!.payload, status: 'SKIPPED' }, /^\/status must be equal to one of the allowed values/],
    ['a controller host that is null', finish!, { ...finish!.payload, host: null }, /^\/host must be string/]
  ]
  for (const [what, { kind, topic }, payload, path] of broken) {
    checkRefused(t, catalogue.validate(topic, Buffer.from(JSON.stringify(payload))), path, what)
    t.notOk(requestSchema.safeParse({ events: [{ id: 'x', kind, payload }] }).success, `${what}: the receiver refuses it as well`)
  }
  checkRefused(t, catalogue.validateAgainst('ansible.stats', finish!.payload), /^\(payload\) must have required property 'stats'/, 'a finish is not stats')
})
