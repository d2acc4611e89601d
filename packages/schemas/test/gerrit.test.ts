import { existsSync, readdirSync, readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { topicFor, type GerritEvent } from '../../gerrit-bridge/src/topic.js'
import { Catalogue, type Verdict } from '../src/index.js'

/** The recorded Gerrit events: the bridge's own, and the shared ones beside the repository (absent from a bare clone). */
const FIXTURE_DIRS = [
  new URL('../../gerrit-bridge/test/fixtures/', import.meta.url),
  new URL('../../../../shared/fixtures/gerrit/', import.meta.url)
]

interface Recorded { file: string, line: number, text: string, event: GerritEvent }

function recorded (dir: URL): Recorded[] {
  return readdirSync(dir).filter(f => f.endsWith('.jsonl')).sort().flatMap(file =>
    readFileSync(new URL(file, dir), 'utf8').split('\n').flatMap((text, i) =>
      text.trim() === '' ? [] : [{ file: `${dir.pathname}${file}`, line: i + 1, text, event: JSON.parse(text) as GerritEvent }]))
}

/** As the bridge publishes it: the line unchanged, on the bridge's topic. */
const topicOf = (event: GerritEvent): string => {
  const topic = topicFor(event, 'gerrit')
  if (topic === undefined) throw new Error(`the bridge publishes no topic for ${JSON.stringify(event).slice(0, 100)}`)
  return topic
}
const errorsOf = (verdict: Verdict): string[] => verdict.valid === false ? verdict.errors : []
/** One of an event's objects, to break it in place. */
const field = (event: GerritEvent, name: string): Record<string, unknown> => event[name] as Record<string, unknown>

const catalogue = await Catalogue.load()
const fixture = (type: string): GerritEvent => {
  for (const dir of FIXTURE_DIRS) {
    const found = existsSync(dir) ? recorded(dir).find(r => r.event.type === type) : undefined
    if (found !== undefined) return structuredClone(found.event)
  }
  throw new Error(`no recorded ${type} event`)
}

for (const dir of FIXTURE_DIRS) {
  t.test(`every recorded event in ${dir.pathname} is valid on its bridge topic`, { skip: existsSync(dir) ? false : `${dir.pathname} is absent` }, async t => {
    const events = recorded(dir)
    t.ok(events.length > 0, 'there are recorded events')
    const perType = new Map<string, number>()
    for (const { file, line, text, event } of events) {
      const where = `${file}:${line} (${String(event.type)})`
      const topic = topicOf(event)
      t.equal(catalogue.idFor(topic), 'gerrit.event', `${where}: ${topic} is a Gerrit topic`)
      const verdict = catalogue.validate(topic, text)
      t.ok(verdict.valid, `${where} is valid`, { errors: errorsOf(verdict) })
      t.ok(catalogue.schemas.has(`gerrit.${String(event.type)}`), `${where}: its type has a schema of its own, not the fallback`)
      perType.set(String(event.type), (perType.get(String(event.type)) ?? 0) + 1)
    }
    t.comment([...perType].map(([type, n]) => `${type}: ${n}`).join(', '))
  })
}

t.test('the schemas are not vacuous: broken events are refused, naming the field', async t => {
  const refused = (t: Test, event: GerritEvent, needle: string, what: string): void => {
    const verdict = catalogue.validate(topicOf(event), JSON.stringify(event))
    t.equal(verdict.valid, false, `${what} is refused`)
    const errors = errorsOf(verdict)
    t.ok(errors.some(e => e.includes(needle)), `${what}: an error names ${needle}`, { errors })
  }

  const merged = fixture('change-merged')
  delete merged.change
  refused(t, merged, '"missingProperty":"change"', 'change-merged without change')

  const created = fixture('patchset-created')
  field(created, 'patchSet').number = { value: 1 }
  refused(t, created, '/patchSet/number ', 'patchSet.number as an object')

  const stringTime = fixture('patchset-created')
  stringTime.eventCreatedOn = '1686239243'
  refused(t, stringTime, '/eventCreatedOn ', 'eventCreatedOn as a string')

  const comment = fixture('comment-added')
  comment.approvals = { type: 'Code-Review', value: '2' }
  refused(t, comment, '/approvals ', 'comment-added whose approvals is not an array')

  const vote = fixture('comment-added')
  vote.approvals = [{ type: 'Code-Review', value: 2 }]
  refused(t, vote, '/approvals/0/value ', 'an approval whose value is a number, not Gerrit\'s string')

  const noOwner = fixture('reviewer-added')
  field(noOwner, 'change').owner = 'jojantti'
  refused(t, noOwner, '/change/owner ', 'change.owner as a string')

  const badNumber = fixture('change-abandoned')
  field(badNumber, 'change').number = 'I5f5d8da9'
  refused(t, badNumber, '/change/number ', 'change.number that is not a number')

  const ref = fixture('ref-updated')
  field(ref, 'refUpdate').newRev = 'HEAD'
  refused(t, ref, '/refUpdate/newRev ', 'refUpdate.newRev that is not a commit id')

  const noRef = fixture('ref-updated')
  delete noRef.refUpdate
  refused(t, noRef, '"missingProperty":"refUpdate"', 'ref-updated without refUpdate')

  const wip = fixture('wip-state-changed')
  delete wip.eventCreatedOn
  refused(t, wip, '"missingProperty":"eventCreatedOn"', 'wip-state-changed without eventCreatedOn (Gerrit always sends it)')

  const done = fixture('ref-replication-done')
  done.nodesCount = '1'
  refused(t, done, '/nodesCount ', 'ref-replication-done whose nodesCount is a string')

  const noType = catalogue.validate('gerrit/project1/patchset-created', JSON.stringify({ change: { project: 'project1' } }))
  t.equal(noType.valid, false, 'an object without type is refused')
  t.ok(errorsOf(noType).some(e => e.includes('"missingProperty":"type"')), 'naming type', { errors: errorsOf(noType) })
  t.equal(catalogue.validate('gerrit/project1/x', '"not an event"').valid, false, 'a payload that is not an object is refused')
})

t.test('an unknown type with a plausible body is accepted by the fallback', async t => {
  const change = fixture('patchset-created').change
  const event = { type: 'custom-keyed-values-changed', change, editor: { name: 'Administrator', username: 'admin' }, added: { team: 'infra' }, eventCreatedOn: 1753963011 }
  const topic = topicOf(event)
  t.equal(topic, 'gerrit/project1/custom-keyed-values-changed')
  t.notOk(catalogue.schemas.has('gerrit.custom-keyed-values-changed'), 'a type with no schema of its own')
  const verdict = catalogue.validate(topic, JSON.stringify(event))
  t.ok(verdict.valid, 'accepted', { errors: errorsOf(verdict) })
  t.ok(catalogue.validate('gerrit/brand-new-event', '{"type":"brand-new-event"}').valid, 'even a bare {"type": ...}')
})
