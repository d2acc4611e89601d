import { readFileSync } from 'node:fs'
import t from 'tap'
import { dedupeKey } from '../src/dedupe-key.js'
import { topicFor, type GerritEvent } from '../src/topic.js'

const lines = readFileSync(new URL('./fixtures/stream-events.jsonl', import.meta.url), 'utf8').split('\n').filter(l => l !== '')

t.test('every recorded Gerrit 2.x and 3.x event maps to germqtt\'s topic', async t => {
  t.same(lines.map(l => topicFor(JSON.parse(l) as GerritEvent, 'gerrit')), [
    'gerrit/project1/patchset-created',
    'gerrit/snix/patchset-created',
    'gerrit/depot/comment-added',
    'gerrit/snix/wip-state-changed',
    'gerrit/qt/qtbase/reviewer-deleted',
    'gerrit/qt/qtbase/change-merged',
    'gerrit/qtqa/tqtc-coin-ci/reviewer-added',
    'gerrit/qt/qtbase/change-restored',
    'gerrit/qt/qtbase/change-abandoned',
    'gerrit/qt/qtdeclarative/ref-updated',
    'gerrit/project1/ref-updated',
    'gerrit/project1/project-created',
    'gerrit/project1/ref-replication-scheduled',
    'gerrit/project1/ref-replicated',
    'gerrit/project1/ref-replication-done'
  ])
})

t.test('project: top-level first, then change, then refUpdate; unknown types kept; no type, no topic', async t => {
  t.equal(topicFor({ type: 'x', project: 'a', change: { project: 'b' } }, 'g'), 'g/a/x')
  t.equal(topicFor({ type: 'x', change: { project: 'b' }, refUpdate: { project: 'c' } }, 'g'), 'g/b/x')
  t.equal(topicFor({ type: 'x', refUpdate: { project: 'c' } }, 'g'), 'g/c/x')
  t.equal(topicFor({ type: 'brand-new-event' }, 'g'), 'g/brand-new-event')
  t.equal(topicFor({ type: 'x', project: 'we+ird#' }, 'g'), 'g/we_ird_/x', 'wildcards cannot appear in a topic')
  t.equal(topicFor({ project: 'a' }, 'g'), undefined)
})

t.test('dedupe keys: distinct for every recorded event, equal for the same event reformatted', async t => {
  const keys = lines.map(l => dedupeKey(JSON.parse(l) as GerritEvent, l))
  t.equal(new Set(keys).size, keys.length)
  const withTime = lines.find(l => (JSON.parse(l) as GerritEvent).eventCreatedOn !== undefined)!
  const reformatted = JSON.stringify(JSON.parse(withTime), null, 2)
  t.equal(dedupeKey(JSON.parse(reformatted) as GerritEvent, reformatted), dedupeKey(JSON.parse(withTime) as GerritEvent, withTime))
  const a = { type: 'comment-added', eventCreatedOn: 1, change: { number: 1 }, patchSet: { number: 1 }, author: { username: 'x' }, comment: 'one' }
  t.not(dedupeKey(a, ''), dedupeKey({ ...a, author: { username: 'y' } }, ''), 'two reviewers in one second')
  t.not(dedupeKey(a, ''), dedupeKey({ ...a, comment: 'two' }, ''), 'two comments in one second')
})
