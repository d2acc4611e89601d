import { topicMatches } from '@firehose/runtime'
import type { JournalEntry } from '@firehose/journal'
import { holds } from './condition.js'
import { HeldEvents } from './held-events.js'
import { outputIdentity } from './output.js'
import { ruleTopics, type Rule } from './rule.js'

/** A rule fired: which events its combined event holds (by offset), and why. */
export interface Decision {
  rule: string
  /** the offset of the entry that caused it: the event that completed the window, or the trigger command */
  cause: number
  /** that entry's timestamp: the combined event's date */
  at: number
  triggerType: 'window' | 'none'
  endpoints: Array<{ eventKey: string, offsets: number[], count: number, first?: number, last?: number }>
  /** where the rule stood before the cause: a restart resumes here while the decision is unpublished */
  before: Place
}

/** Where a rule stands in the journal: all it needs to go on from there (its held events are re-read). */
export interface Place {
  /** the last offset folded */
  through: number
  /** events at or before this offset are exported (used by a trigger, or reset) */
  exportedThrough: number
  /** the timestamp of the entry at `through`: the observation period ends here */
  clock: number
}

export interface RuleCounters {
  /** events taken, per endpoint (in the rule's order) */
  events: number[]
  triggers: { window: number, none: number }
  /** events that left the observation period unused */
  expired: number
}

/**
 * One rule as a fold over the journal: given the same entries from the same place, it makes
 * the same decisions — which is what makes a sync exactly-once across a crash. Everything that
 * changes it is an entry: events (on the endpoints' topics), commands (`eventsync/<rule>/trigger`
 * and `/reset`, which the API publishes) and the rule's own combined events, which confirm a
 * decision as published. Time is the entries' timestamps, never the clock on the wall.
 */
export class RuleState {
  readonly held: HeldEvents[]
  readonly counters: RuleCounters
  /** decisions whose combined event is not in the journal yet, by cause */
  readonly pending = new Map<number, Decision>()
  /** the offset of the last event an endpoint took */
  lastTaken = 0
  #place: Place
  readonly #triggerTopic: string
  readonly #resetTopic: string
  /** whether an endpoint holds its minEvents (the condition asks at every event of a window rule) */
  readonly #satisfied: (key: string) => boolean
  /** events at or before this offset went into a combined event (for the expired count) */
  #usedThrough = 0

  constructor (readonly rule: Rule, place: Place) {
    this.#place = { ...place }
    this.held = rule.endpoints.map(() => new HeldEvents())
    this.counters = { events: rule.endpoints.map(() => 0), triggers: { window: 0, none: 0 }, expired: 0 }
    this.#triggerTopic = ruleTopics.trigger(rule.name)
    this.#resetTopic = ruleTopics.reset(rule.name)
    const index = new Map(rule.endpoints.map((e, i) => [e.eventKey, i]))
    this.#satisfied = key => {
      const i = index.get(key)!
      return this.held[i]!.size >= rule.endpoints[i]!.minEvents
    }
  }

  get place (): Place {
    return { ...this.#place }
  }

  /**
   * Where a restart goes on from: here, or, while a decision is unpublished, just before the
   * first such (so that it is made again and published).
   */
  resumePlace (): Place {
    let earliest: Decision | undefined
    for (const d of this.pending.values()) if (earliest === undefined || d.cause < earliest.cause) earliest = d
    return earliest === undefined ? this.place : { ...earliest.before }
  }

  /**
   * Re-reads an entry from before the place the rule resumes from: an event still within the
   * period and not exported is held again. Nothing is decided or counted.
   */
  warm (entry: JournalEntry): void {
    if (entry.offset <= this.#place.exportedThrough || entry.offset > this.#place.through) return
    if (entry.timestamp < this.#place.clock - this.rule.trigger.observationPeriodMs) return
    this.rule.endpoints.forEach((endpoint, i) => {
      if (topicMatches(endpoint.topic, entry.topic)) this.held[i]!.add(entry.offset, entry.timestamp)
    })
  }

  /** Folds the next entry in; returns the decision it completes, if any. */
  take (entry: JournalEntry): Decision | undefined {
    if (entry.offset <= this.#place.through) return undefined
    const before = this.place
    this.#place.through = entry.offset
    this.#place.clock = Math.max(this.#place.clock, entry.timestamp)

    if (entry.topic === this.#triggerTopic) {
      this.#expire()
      return this.#decide(entry, 'none', before)
    }
    if (entry.topic === this.#resetTopic) {
      this.#place.exportedThrough = entry.offset
      for (const held of this.held) held.clear()
      return undefined
    }
    const published = this.publishedCause(entry)
    if (published !== undefined) {
      this.pending.delete(published)
      return undefined
    }
    let matched = false
    this.rule.endpoints.forEach((endpoint, i) => {
      if (!topicMatches(endpoint.topic, entry.topic)) return
      this.held[i]!.add(entry.offset, entry.timestamp)
      this.counters.events[i]!++
      matched = true
    })
    if (matched) this.lastTaken = entry.offset
    if (!matched || this.rule.trigger.type !== 'window') return undefined
    this.#expire()
    return holds(this.rule.condition, this.#satisfied) ? this.#decide(entry, 'window', before) : undefined
  }

  /** The cause of the decision `entry` publishes, when it is this rule's own combined event (the broker's, on its target topic). */
  publishedCause (entry: JournalEntry): number | undefined {
    if (entry.topic !== this.rule.target.topic || entry.user !== undefined) return undefined
    const identity = outputIdentity(entry)
    return identity?.serviceName === this.rule.name ? identity.triggerOffset : undefined
  }

  /**
   * Lets events older than the period go without waiting for an event of this rule: by the
   * journal's clock (the last entry folded, of any topic), never the wall clock — an entry
   * appended before a wall-clock tick and folded after it would be judged on events the tick had
   * dropped, and a restart, re-reading it, would decide otherwise.
   */
  tick (): void {
    this.#expire()
  }

  #expire (now = this.#place.clock): void {
    const cutoff = now - this.rule.trigger.observationPeriodMs
    // kept after a trigger (keepEventAfterTrigger), an event that goes was used all the same
    for (const held of this.held) this.counters.expired += held.expire(cutoff, this.#usedThrough)
  }

  #decide (entry: JournalEntry, triggerType: 'window' | 'none', before: Place): Decision {
    const endpoints = this.rule.endpoints.map((endpoint, i) => {
      const held = this.held[i]!
      return {
        eventKey: endpoint.eventKey,
        offsets: held.offsets(),
        count: held.size,
        ...(held.size === 0 ? {} : { first: held.timestampAt(0), last: held.timestampAt(held.size - 1) })
      }
    })
    if (!this.rule.trigger.keepEventAfterTrigger) {
      this.#place.exportedThrough = entry.offset
      for (const held of this.held) held.clear()
    }
    this.#usedThrough = entry.offset
    const decision: Decision = { rule: this.rule.name, cause: entry.offset, at: entry.timestamp, triggerType, endpoints, before }
    this.pending.set(entry.offset, decision)
    this.counters.triggers[triggerType]++
    return decision
  }
}
