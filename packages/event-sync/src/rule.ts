import { createHash } from 'node:crypto'
import { z } from 'zod'
import { parseDuration } from '@firehose/journal'
import { formatZodIssues, isValidFilter, topicMatches } from '@firehose/runtime'
import { allOf, ConditionError, parseCondition, type Condition } from './condition.js'

/** A rule's name: a topic level of its own (`eventsync/<name>`) and a URL path segment. */
export const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/
/** An event key: a URL path segment, a topic level, and a word of a condition. */
export const EVENT_KEY = /^[A-Za-z0-9_.-]{1,128}$/

/** The topics a rule's name gives it: HTTP events, commands, and its output by default. */
export const ruleTopics = {
  output: (name: string): string => `eventsync/${name}`,
  event: (name: string, eventKey: string): string => `eventsync/${name}/event/${eventKey}`,
  trigger: (name: string): string => `eventsync/${name}/trigger`,
  reset: (name: string): string => `eventsync/${name}/reset`,
  /** everything under the rule's name: what posting to it needs write access to */
  all: (name: string): string => `eventsync/${name}/#`
}

export const ruleSchema = z.strictObject({
  name: z.string().regex(RULE_NAME, 'letters, digits, ".", "_" and "-" (first a letter or digit), at most 128'),
  trigger: z.strictObject({
    type: z.enum(['window', 'none']),
    /** seconds, or a duration with a unit (90s, 15m, 1h, 7d) */
    observationPeriod: z.union([z.number(), z.string()]),
    keepEventAfterTrigger: z.boolean().default(false)
  }),
  endpoints: z.array(z.strictObject({
    eventKey: z.string().regex(EVENT_KEY, 'letters, digits, ".", "_" and "-", at most 128'),
    /** an MQTT filter: events come from the journal; without one, from HTTP (POST .../event/<eventKey>) */
    topic: z.string().min(1).optional(),
    /** events this endpoint needs within the period to count as reported */
    minEvents: z.number().int().min(1).default(1)
  })).min(1),
  /** over event keys: &&, ||, !, parentheses (default: every endpoint) */
  condition: z.string().min(1).optional(),
  /** where the combined event is published (default eventsync/<name>) */
  target: z.strictObject({ topic: z.string().min(1) }).optional()
})

export type RawRule = z.input<typeof ruleSchema>

export interface Endpoint {
  eventKey: string
  /** the MQTT filter its events come from (for an HTTP endpoint, eventsync/<name>/event/<eventKey>) */
  topic: string
  /** takes HTTP POSTs (it named no topic) */
  http: boolean
  minEvents: number
}

/** A rule, checked: what the engine runs. */
export interface Rule {
  name: string
  /** the user who made it through the API; none for a rule of the configuration */
  owner?: string
  trigger: { type: 'window' | 'none', observationPeriodMs: number, keepEventAfterTrigger: boolean }
  endpoints: readonly Endpoint[]
  condition: Condition
  target: { topic: string }
  /** the rule as written, defaults filled in: what GET .../config shows */
  definition: Record<string, unknown>
  /**
   * A digest of the definition. A rule whose definition changed starts afresh (its place in the
   * journal and its held events are the old rule's, not its own).
   */
  version: string
}

/** Problems with one rule, each `path: problem`. */
export class RuleError extends Error {
  constructor (readonly problems: string[]) {
    super(problems.join('; '))
  }
}

const isTopicName = (topic: string): boolean => topic !== '' && !topic.includes('+') && !topic.includes('#') && !topic.startsWith('$')

/**
 * Checks one rule (`at` prefixes each problem's path: `eventSync[2]`, or '' for the API).
 * Throws a RuleError listing every problem found.
 */
export function parseRule (raw: unknown, at = '', owner?: string): Rule {
  const prefix = (path: string): string => at === '' ? path : path.startsWith('(top level)') ? at + path.slice('(top level)'.length) : `${at}.${path}`
  const parsed = ruleSchema.safeParse(raw)
  if (!parsed.success) throw new RuleError(formatZodIssues(parsed.error.issues).map(prefix))
  const r = parsed.data
  const problems: string[] = []
  const where = (path: string): string => prefix(path)

  const observationPeriodMs = parseDuration(r.trigger.observationPeriod)
  if (observationPeriodMs === undefined) problems.push(`${where('trigger.observationPeriod')}: ${JSON.stringify(r.trigger.observationPeriod)} is not a duration above 0 (seconds, or 90s, 15m, 1h, 7d)`)

  const target = r.target?.topic ?? ruleTopics.output(r.name)
  if (!isTopicName(target)) problems.push(`${where('target.topic')}: "${target}" is not a topic one can publish to (no wildcards, not $)`)
  const own = [target, ruleTopics.trigger(r.name), ruleTopics.reset(r.name)]

  const firstByKey = new Map<string, number>()
  const endpoints: Endpoint[] = r.endpoints.map((e, i) => {
    const earlier = firstByKey.get(e.eventKey)
    if (earlier !== undefined) problems.push(`${where(`endpoints[${i}].eventKey`)}: "${e.eventKey}" is also endpoints[${earlier}]'s (event keys are unique within a rule)`)
    else firstByKey.set(e.eventKey, i)
    const topic = e.topic ?? ruleTopics.event(r.name, e.eventKey)
    if (e.topic !== undefined) {
      if (!isValidFilter(e.topic)) problems.push(`${where(`endpoints[${i}].topic`)}: "${e.topic}" is not an MQTT topic filter`)
      else {
        const loop = own.find(t => topicMatches(e.topic!, t))
        if (loop !== undefined) problems.push(`${where(`endpoints[${i}].topic`)}: "${e.topic}" matches this rule's own ${loop === target ? 'output' : 'command'} topic ${loop} (the rule would feed on itself)`)
      }
    }
    return { eventKey: e.eventKey, topic, http: e.topic === undefined, minEvents: e.minEvents }
  })

  let condition: Condition = allOf(endpoints.map(e => e.eventKey))
  if (r.condition !== undefined) {
    try {
      condition = parseCondition(r.condition, new Set(firstByKey.keys()))
    } catch (err) {
      if (!(err instanceof ConditionError)) throw err
      problems.push(`${where('condition')}: ${err.message}`)
    }
  }
  if (problems.length > 0) throw new RuleError(problems)

  const definition: Record<string, unknown> = {
    name: r.name,
    trigger: { type: r.trigger.type, observationPeriod: observationPeriodMs! / 1000, keepEventAfterTrigger: r.trigger.keepEventAfterTrigger },
    endpoints: r.endpoints.map(e => ({ eventKey: e.eventKey, ...(e.topic === undefined ? {} : { topic: e.topic }), minEvents: e.minEvents })),
    ...(r.condition === undefined ? {} : { condition: r.condition }),
    target: { topic: target },
    ...(owner === undefined ? {} : { owner })
  }
  return {
    name: r.name,
    ...(owner === undefined ? {} : { owner }),
    trigger: { type: r.trigger.type, observationPeriodMs: observationPeriodMs!, keepEventAfterTrigger: r.trigger.keepEventAfterTrigger },
    endpoints,
    condition,
    target: { topic: target },
    definition,
    version: createHash('sha256').update(JSON.stringify(definition)).digest('base64url').slice(0, 16)
  }
}

/**
 * The configuration's rules (`eventSync: [...]`), each checked, names unique. Every problem of
 * every rule is reported, each naming its key (`eventSync[1].condition: ...`).
 */
export function parseRules (raw: unknown, key = 'eventSync'): { rules: Rule[], problems: string[] } {
  if (!Array.isArray(raw)) return { rules: [], problems: [`${key}: expected a list of rules`] }
  const rules: Rule[] = []
  const problems: string[] = []
  const byName = new Map<string, number>()
  raw.forEach((item, i) => {
    try {
      const rule = parseRule(item, `${key}[${i}]`)
      const earlier = byName.get(rule.name)
      if (earlier !== undefined) problems.push(`${key}[${i}].name: "${rule.name}" is also ${key}[${earlier}]'s`)
      else byName.set(rule.name, i)
      rules.push(rule)
    } catch (err) {
      if (!(err instanceof RuleError)) throw err
      problems.push(...err.problems)
    }
  })
  return { rules, problems }
}

/** A rule made through the API as the store keeps it: its definition, the owner apart. */
export function storedDefinition (rule: Rule): Record<string, unknown> {
  const { owner: _owner, ...rest } = rule.definition
  return rest
}
