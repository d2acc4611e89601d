import t from 'tap'
import { holds, parseCondition, parseRule, parseRules, RuleError, ConditionError } from '../src/index.js'

const keys = new Set(['build', 'mail', 'deploy'])

t.test('conditions: precedence (! then && then ||), parentheses, every key checked', async t => {
  const sat = (...on: string[]) => (key: string) => on.includes(key)
  const c = parseCondition('build && (mail || deploy)', keys)
  t.equal(holds(c, sat('build', 'mail')), true)
  t.equal(holds(c, sat('build', 'deploy')), true)
  t.equal(holds(c, sat('mail', 'deploy')), false)
  const p = parseCondition('build && mail || deploy', keys)
  t.equal(holds(p, sat('deploy')), true, '&& binds tighter than ||')
  t.equal(holds(p, sat('build')), false)
  const n = parseCondition('!mail && build', keys)
  t.equal(holds(n, sat('build')), true)
  t.equal(holds(n, sat('build', 'mail')), false)
  t.equal(holds(parseCondition('!(mail || deploy)', keys), sat()), true)
})

t.test('conditions that do not parse name the column', async t => {
  const cases: Array<[string, RegExp]> = [
    ['build && nightly', /"nightly" is not an event key of this rule \(build, mail, deploy\) at column 10/],
    ['build &&', /expected an event key, "!" or "\(" but found the end at column 9/],
    ['(build || mail', /expected "\)" but found the end at column 15/],
    ['build mail', /expected "&&", "\|\|" or the end but found "mail" at column 7/],
    ['build & mail', /unexpected "&" .* at column 7/],
    ['build || )', /found "\)" at column 10/]
  ]
  for (const [text, message] of cases) t.throws(() => parseCondition(text, keys), { constructor: ConditionError, message }, text)
})

const good = {
  name: 'nightly',
  trigger: { type: 'window', observationPeriod: 3600 },
  endpoints: [{ eventKey: 'merge', topic: 'gerrit/+/+/change-merged' }, { eventKey: 'deploy' }]
}

t.test('a rule: defaults filled in, HTTP endpoints get their topic, a version of the definition', async t => {
  const rule = parseRule(good)
  t.same(rule.trigger, { type: 'window', observationPeriodMs: 3_600_000, keepEventAfterTrigger: false })
  t.same(rule.endpoints, [
    { eventKey: 'merge', topic: 'gerrit/+/+/change-merged', http: false, minEvents: 1 },
    { eventKey: 'deploy', topic: 'eventsync/nightly/event/deploy', http: true, minEvents: 1 }
  ])
  t.same(rule.target, { topic: 'eventsync/nightly' })
  t.equal(holds(rule.condition, k => k === 'merge'), false, 'default condition: every endpoint')
  t.equal(holds(rule.condition, () => true), true)
  t.equal(parseRule({ ...good, trigger: { type: 'window', observationPeriod: '1h' } }).version, rule.version, '1h is 3600 s: the same rule')
  t.not(parseRule({ ...good, trigger: { type: 'window', observationPeriod: '2h' } }).version, rule.version)
})

t.test('bad rules are refused with the key named', async t => {
  const problems = (raw: unknown): string[] => {
    try {
      parseRule(raw, 'eventSync[0]')
    } catch (err) {
      if (err instanceof RuleError) return err.problems
      throw err
    }
    return []
  }
  t.match(problems({ ...good, trigger: { type: 'window', observationPeriod: 0 } }), [/^eventSync\[0\]\.trigger\.observationPeriod: 0 is not a duration above 0/])
  t.match(problems({ ...good, trigger: { type: 'window', observationPeriod: -5 } }), [/^eventSync\[0\]\.trigger\.observationPeriod: -5 is not a duration/])
  t.match(problems({ ...good, endpoints: [{ eventKey: 'a' }, { eventKey: 'a' }] }), [/^eventSync\[0\]\.endpoints\[1\]\.eventKey: "a" is also endpoints\[0\]'s/])
  t.match(problems({ ...good, condition: 'merge && mail' }), [/^eventSync\[0\]\.condition: "mail" is not an event key of this rule \(merge, deploy\) at column 10/])
  t.match(problems({ ...good, endpoints: [{ eventKey: 'all', topic: '#' }] }), [/^eventSync\[0\]\.endpoints\[0\]\.topic: "#" matches this rule's own output topic eventsync\/nightly/])
  t.match(problems({ ...good, endpoints: [{ eventKey: 'x', topic: 'eventsync/nightly/+' }] }), [/matches this rule's own command topic eventsync\/nightly\/trigger/])
  t.match(problems({ ...good, endpoints: [{ eventKey: 'x', topic: 'a/#/b' }] }), [/^eventSync\[0\]\.endpoints\[0\]\.topic: "a\/#\/b" is not an MQTT topic filter/])
  t.match(problems({ ...good, target: { topic: 'out/+' } }), [/^eventSync\[0\]\.target\.topic: "out\/\+" is not a topic one can publish to/])
  t.match(problems({ ...good, name: 'a/b' }), [/^eventSync\[0\]\.name: /])
  t.match(problems({ ...good, endpoints: [] }), [/^eventSync\[0\]\.endpoints: /])
  t.match(problems({ ...good, trigger: { type: 'sometimes', observationPeriod: 1 } }), [/^eventSync\[0\]\.trigger\.type: /])
  t.match(problems({ ...good, extra: 1 }), [/^eventSync\[0\]: unknown key "extra"/])
  t.match(problems({ ...good, endpoints: [{ eventKey: 'a', minEvents: 0 }] }), [/^eventSync\[0\]\.endpoints\[0\]\.minEvents: /])
})

t.test('a list of rules: every problem of every rule, names unique', async t => {
  const { rules, problems } = parseRules([good, { ...good }, { ...good, name: 'other', condition: '&&' }])
  t.equal(rules.length, 2)
  t.match(problems, [/^eventSync\[1\]\.name: "nightly" is also eventSync\[0\]'s/, /^eventSync\[2\]\.condition: /])
  t.match(parseRules({}).problems, [/^eventSync: expected a list of rules/])
})
