import { readFileSync } from 'node:fs'
import t from 'tap'
import { requestSchema, topicFor } from '../src/events.js'

// The original plugin's events, mapped to the consistent scheme.
const original = readFileSync(new URL('./fixtures/original-plugin-events.jsonl', import.meta.url), 'utf8')
  .split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { topic: string, payload: Record<string, unknown> })

t.test('the original topics, made consistent: playbook/ and task/, never playbooks/ or tasks/', async t => {
  const kinds = ['start', 'task', 'stats', 'finish'] as const
  const events = original.map((o, i) => ({ id: `x/${i}`, kind: kinds[i]!, payload: o.payload }))
  const parsed = requestSchema.parse({ events })
  t.same(parsed.events.map(e => topicFor(e, 'ansible')), [
    'ansible/playbook/5a95e9da-8d33-4dbb-a8b3-a77affc065d0/action/start',
    'ansible/playbook/b259ac6d-6cb5-4403-bb8d-0ff2131c3d7a/task/compute014.chocolate.ic.openstack.org/OK',
    'ansible/playbook/b259ac6d-6cb5-4403-bb8d-0ff2131c3d7a/stats/controller00.vanilla.ic.openstack.org',
    'ansible/playbook/b259ac6d-6cb5-4403-bb8d-0ff2131c3d7a/action/finish/FAILED'
  ])
  t.same(original.map(o => o.topic.replace('/playbooks/', '/playbook/').replace('/tasks/', '/task/')), parsed.events.map(e => topicFor(e, 'ansible')), 'the same places as before, spelled one way')
})

t.test('the schema refuses what would break a topic or is not an event', async t => {
  const base = { id: 'x/1', kind: 'task', payload: { playbook_id: '5a95e9da-8d33-4dbb-a8b3-a77affc065d0', status: 'OK', ansible_host: 'h', ansible_task: 'TASK: t', ansible_result: {} } }
  t.ok(requestSchema.safeParse({ events: [base] }).success)
  for (const [what, payload] of [
    ['a host with /', { ...base.payload, ansible_host: 'a/b' }],
    ['a host with +', { ...base.payload, ansible_host: 'a+b' }],
    ['an unknown status', { ...base.payload, status: 'MAYBE' }],
    ['a result that is a string', { ...base.payload, ansible_result: '{"double":"encoded"}' }],
    ['a playbook id that is not a uuid', { ...base.payload, playbook_id: '../../x' }]
  ] as const) t.notOk(requestSchema.safeParse({ events: [{ ...base, payload }] }).success, what)
  t.notOk(requestSchema.safeParse({ events: [] }).success, 'no events')
  t.notOk(requestSchema.safeParse({ events: [{ ...base, kind: 'explode' }] }).success, 'unknown kind')
})
