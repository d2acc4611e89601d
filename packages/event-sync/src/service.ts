import { iso, type HttpEventBody } from './output.js'
import { ruleTopics, type Rule } from './rule.js'
import type { RuleState } from './rule-state.js'

/** What went wrong on the output side, for /metrics. */
export interface EventSyncTotals {
  /** combined events that had to leave events out to fit the broker's packet size */
  truncated: number
  /** publishes of a combined event that failed (each is tried again) */
  publishFailures: number
  /** journal reads that failed (following starts again where it stopped) */
  readFailures: number
  /** replayed decisions the fold thought unpublished and the journal showed published (each a bug caught: none is published twice) */
  republishesAvoided: number
  /** offsets missing between two entries the follower delivered (a failed journal write leaves one; anything else is a bug) */
  gaps: number
}

/** A request about a rule that cannot be met: the API's status and message. */
export class EventSyncError extends Error {
  constructor (readonly status: 400 | 403 | 404 | 409, message: string) {
    super(message)
  }
}

/**
 * What the HTTP API and /metrics need of event sync: on one broker (EventSync, which runs every
 * rule), or on a cluster node (ClusterEventSync, which runs them while it holds the cluster's
 * lock, and otherwise knows the rules and reads their state from Redis).
 */
export interface EventSyncService {
  readonly totals: EventSyncTotals
  /** every rule this node knows: the configuration's and those made through the API */
  rules: () => Rule[]
  rule: (name: string) => Rule | undefined
  isConfigured: (name: string) => boolean
  /** what GET .../state shows; undefined for no such rule */
  state: (name: string) => Promise<Record<string, unknown> | undefined>
  /** the rules this node runs, for /metrics */
  running: () => RuleState[]
  create: (rule: Rule) => Promise<void>
  remove: (name: string) => Promise<void>
  postEvent: (name: string, eventKey: string, body: HttpEventBody, user: string) => Promise<void>
  trigger: (name: string, user: string) => Promise<void>
  reset: (name: string, user: string) => Promise<void>
  replaceConfigRules: (rules: readonly Rule[]) => Promise<void>
  close: () => Promise<void>
}

type Publish = (topic: string, payload: Buffer, user?: string) => Promise<void>

/**
 * Commands for a rule are journal entries, published through the broker with the user who sent
 * them: an HTTP event on its endpoint's topic, a trigger, a reset. Whichever node runs the rule
 * folds them in as it meets them.
 */
export const commands = {
  async event (rule: Rule | undefined, name: string, eventKey: string, body: HttpEventBody, user: string, publish: Publish): Promise<void> {
    if (rule === undefined) throw new EventSyncError(404, `no rule named "${name}"`)
    const endpoint = rule.endpoints.find(e => e.eventKey === eventKey)
    if (endpoint === undefined) throw new EventSyncError(404, `rule "${name}" has no endpoint "${eventKey}" (${rule.endpoints.map(e => e.eventKey).join(', ')})`)
    if (!endpoint.http) throw new EventSyncError(400, `endpoint "${eventKey}" of rule "${name}" takes its events from ${endpoint.topic}, not from HTTP`)
    await publish(endpoint.topic, Buffer.from(JSON.stringify(body)), user)
  },
  async trigger (rule: Rule | undefined, name: string, user: string, publish: Publish): Promise<void> {
    if (rule === undefined) throw new EventSyncError(404, `no rule named "${name}"`)
    await publish(ruleTopics.trigger(name), Buffer.from(JSON.stringify({ by: user })), user)
  },
  async reset (rule: Rule | undefined, name: string, user: string, publish: Publish): Promise<void> {
    if (rule === undefined) throw new EventSyncError(404, `no rule named "${name}"`)
    await publish(ruleTopics.reset(name), Buffer.from(JSON.stringify({ by: user })), user)
  }
}

/** What GET .../state shows of a running rule: per endpoint the events held, when the oldest leaves the period, what is pending. */
export function stateView (state: RuleState): Record<string, unknown> {
  const { rule } = state
  const period = rule.trigger.observationPeriodMs
  const endpoints: Record<string, unknown> = {}
  let nextExpiry: number | undefined
  rule.endpoints.forEach((endpoint, i) => {
    const held = state.held[i]!
    if (held.size > 0) nextExpiry = Math.min(nextExpiry ?? Infinity, held.timestampAt(0) + period)
    endpoints[endpoint.eventKey] = {
      topic: endpoint.topic,
      events: held.size,
      minEvents: endpoint.minEvents,
      ...(held.size === 0 ? {} : { FirstEventDate: iso(held.timestampAt(0)), lastEventDate: iso(held.timestampAt(held.size - 1)) }),
      eventsTotal: state.counters.events[i]
    }
  })
  const { through, exportedThrough } = state.place
  return {
    name: rule.name,
    endpoints,
    nextExpiry: nextExpiry === undefined ? null : iso(nextExpiry),
    through,
    exportedThrough,
    pending: state.pending.size,
    triggers: state.counters.triggers,
    expired: state.counters.expired
  }
}
