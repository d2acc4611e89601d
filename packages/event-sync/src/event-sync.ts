import { follow, type Journal } from '@firehose/journal'
import type { JournalEntry } from '@firehose/journal'
import { buildOutput, type BuiltOutput, type HttpEventBody } from './output.js'
import { parseRule, ruleTopics, storedDefinition, type Rule } from './rule.js'
import { RuleState, type Decision, type Place } from './rule-state.js'
import { commands, EventSyncError, stateView, type EventSyncService, type EventSyncTotals } from './service.js'
import type { Checkpoint, EventSyncBackend, StoredRule } from './store.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/** Combined events handed to the broker and not yet in the journal, at most. */
const MAX_IN_FLIGHT = 64
/** Recent entries kept for building combined events: at most this many, and this many payload bytes. */
const RECENT_ENTRIES = 2000
const RECENT_BYTES = 4 * 1024 * 1024

export interface EventSyncDeps {
  journal: Journal
  store: EventSyncBackend
  /**
   * Publishes through the broker: journaled, then fanned out to MQTT, SSE, subscriptions and
   * webhooks. `user` is recorded as the publisher (none: the broker's own, as combined events are).
   * Resolves once the message is in the journal.
   */
  publish: (topic: string, payload: Buffer, user?: string) => Promise<void>
  /** the largest combined event, in bytes */
  maxOutputBytes: number
  /** whether the journal keeps a topic (a rule's topics must all be kept) */
  journaled: (topic: string) => boolean
  log: (level: LogLevel, event: string, fields: Record<string, unknown>, message: string) => void
  /** ms since the epoch */
  now?: () => number
  /** ms between checkpoints (and expiry of events past their period while a rule is quiet) */
  checkpointMs?: number
}

/** Why a rule's topics cannot be served here: a topic the journal does not keep. */
export function unjournaledTopic (rule: Rule, journaled: (topic: string) => boolean): string | undefined {
  const topics = [ruleTopics.trigger(rule.name), ruleTopics.reset(rule.name), rule.target.topic, ...rule.endpoints.map(e => e.http ? e.topic : undefined).filter((t): t is string => t !== undefined)]
  return topics.find(t => !journaled(t))
}

/**
 * The event-sync rules of one broker. One follower reads the journal for all of them; each rule
 * is a fold over it (rule-state.ts), and its combined events are published through the broker,
 * so they are journaled too. A decision is pending until the fold meets its combined event in
 * the journal; a checkpoint records where each rule stands — before its first pending decision —
 * so that after a crash the fold re-reads from there, makes the same decisions, finds those
 * already published, and publishes the rest: each exactly once.
 */
export class EventSync implements EventSyncService {
  readonly totals: EventSyncTotals = { truncated: 0, publishFailures: 0, readFailures: 0, republishesAvoided: 0, gaps: 0 }
  readonly #states = new Map<string, RuleState>()
  readonly #configNames = new Set<string>()
  readonly #written = new Map<string, string>()
  #caughtUp = false
  /** the last offset the follower delivered */
  #seen: number
  /** combined events are built one at a time, in the order decided */
  #building: Promise<void> = Promise.resolve()
  /** published, not yet in the journal (each settles, never rejects) */
  readonly #inFlight = new Set<Promise<void>>()
  readonly #retries = new Set<NodeJS.Timeout>()
  readonly #queued = new WeakSet<Decision>()
  /** entries some rule took lately, by offset (oldest first) */
  readonly #recent = new Map<number, JournalEntry>()
  #recentBytes = 0
  #closed = false
  #follower: { stop: () => void, done: Promise<void> } | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #now: () => number

  private constructor (private readonly deps: EventSyncDeps) {
    this.#now = deps.now ?? Date.now
    this.#seen = deps.journal.bounds().last
  }

  /** Opens with the configuration's rules and those made through the API, and starts following the journal. */
  static async open (configRules: readonly Rule[], deps: EventSyncDeps): Promise<EventSync> {
    const sync = new EventSync(deps)
    const checkpoints = await deps.store.checkpoints()
    for (const rule of configRules) {
      sync.#configNames.add(rule.name)
      sync.#add(rule, checkpoints.get(rule.name))
    }
    for (const [name, stored] of await deps.store.rules()) {
      if (sync.#states.has(name)) {
        deps.log('warn', 'eventsync.rule-shadowed', { rule: name, owner: stored.owner }, 'a rule made through the API has the name of a rule in the configuration: the configuration\'s is used')
        continue
      }
      try {
        sync.#add(parseRule(stored.definition, '', stored.owner), checkpoints.get(name))
      } catch (err) {
        deps.log('error', 'eventsync.rule-unreadable', { rule: name, err: (err as Error).message }, 'a stored rule no longer parses: skipped')
      }
    }
    // written at once: a rule that starts afresh starts here, even if the broker dies in the next second
    await sync.#checkpoint()
    await sync.#start()
    return sync
  }

  all (): RuleState[] {
    return [...this.#states.values()]
  }

  running (): RuleState[] {
    return this.all()
  }

  rules (): Rule[] {
    return this.all().map(s => s.rule)
  }

  rule (name: string): Rule | undefined {
    return this.#states.get(name)?.rule
  }

  async state (name: string): Promise<Record<string, unknown> | undefined> {
    const state = this.#states.get(name)
    return state === undefined ? undefined : stateView(state)
  }

  get (name: string): RuleState | undefined {
    return this.#states.get(name)
  }

  isConfigured (name: string): boolean {
    return this.#configNames.has(name)
  }

  /**
   * SIGHUP: the configuration's rules as they are now. A rule whose definition is unchanged goes
   * on; a changed one starts afresh from here; one taken out stops (its decisions in flight are
   * still published).
   */
  async replaceConfigRules (rules: readonly Rule[]): Promise<void> {
    for (const rule of rules) {
      if (!this.#configNames.has(rule.name) && this.#states.has(rule.name)) throw new EventSyncError(409, `eventSync: "${rule.name}" is the name of a rule made through the API (by ${this.#states.get(rule.name)!.rule.owner ?? '?'})`)
    }
    const names = new Set(rules.map(r => r.name))
    for (const name of this.#configNames) {
      if (!names.has(name)) {
        this.#states.delete(name)
        this.#configNames.delete(name)
        await this.deps.store.deleteRule(name)
        this.#written.delete(name)
      }
    }
    for (const rule of rules) {
      if (this.#states.get(rule.name)?.rule.version === rule.version) continue
      this.#configNames.add(rule.name)
      this.#add(rule, undefined)
    }
    await this.#checkpoint()
  }

  /** A rule made through the API by `owner`. */
  async create (rule: Rule): Promise<void> {
    if (rule.owner === undefined) throw new Error('a rule made through the API has an owner')
    if (this.#states.has(rule.name)) throw new EventSyncError(409, `name: a rule named "${rule.name}" exists`)
    const missing = unjournaledTopic(rule, this.deps.journaled)
    if (missing !== undefined) throw new EventSyncError(400, `the journal does not keep ${missing} (journal.topics), so this rule could not work`)
    if (!await this.deps.store.putRule(rule.name, { owner: rule.owner, definition: storedDefinition(rule), created: this.#now() })) throw new EventSyncError(409, `name: a rule named "${rule.name}" exists`)
    this.#add(rule, undefined)
    await this.#checkpoint()
  }

  /**
   * The rules made through the API as the store has them now (on a cluster, made or deleted on
   * any node): new ones start here, deleted ones stop.
   */
  async syncStoredRules (stored: ReadonlyMap<string, StoredRule>): Promise<void> {
    for (const name of [...this.#states.keys()]) {
      if (!this.#configNames.has(name) && !stored.has(name)) {
        this.#states.delete(name)
        this.#written.delete(name)
      }
    }
    let added = false
    for (const [name, s] of stored) {
      if (this.#states.has(name)) continue
      try {
        this.#add(parseRule(s.definition, '', s.owner), undefined)
        added = true
      } catch (err) {
        this.deps.log('error', 'eventsync.rule-unreadable', { rule: name, err: (err as Error).message }, 'a stored rule no longer parses: skipped')
      }
    }
    if (added) await this.#checkpoint()
  }

  /** Deletes a rule made through the API (a configured one is the configuration's to remove). */
  async remove (name: string): Promise<void> {
    if (this.#configNames.has(name)) throw new EventSyncError(409, `"${name}" is a rule of the broker's configuration: remove it there`)
    if (!this.#states.delete(name)) throw new EventSyncError(404, `no rule named "${name}"`)
    this.#written.delete(name)
    await this.deps.store.deleteRule(name)
  }

  /** An HTTP event: journaled (and published) on the endpoint's topic, with who sent it. */
  async postEvent (name: string, eventKey: string, body: HttpEventBody, user: string): Promise<void> {
    await commands.event(this.rule(name), name, eventKey, body, user, this.deps.publish)
  }

  /** Fires the rule now with whatever its period holds (any trigger type): a command in the journal. */
  async trigger (name: string, user: string): Promise<void> {
    await commands.trigger(this.rule(name), name, user, this.deps.publish)
  }

  /** Flags everything the period holds as exported: a command in the journal. */
  async reset (name: string, user: string): Promise<void> {
    await commands.reset(this.rule(name), name, user, this.deps.publish)
  }

  /**
   * Stops following the journal, lets the publishes under way finish, writes where each rule
   * stands, and closes the store. `{ handOver: true }` (a cluster node that lost the lock) writes
   * nothing and leaves the store open: the node that runs the rules now writes.
   */
  async close ({ handOver = false } = {}): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    for (const timer of this.#retries) clearTimeout(timer)
    this.#follower?.stop()
    await this.#follower?.done.catch(() => {})
    // the publishes under way finish; the rest are made again at the next start
    await this.#building
    await Promise.all(this.#inFlight)
    if (handOver) return
    await this.#checkpoint()
    await this.deps.store.close()
  }

  #add (rule: Rule, checkpoint: Checkpoint | undefined): void {
    const place: Place = checkpoint !== undefined && checkpoint.version === rule.version
      ? { through: checkpoint.through, exportedThrough: checkpoint.exportedThrough, clock: checkpoint.clock }
      : { through: this.#seen, exportedThrough: this.#seen, clock: 0 }
    this.#states.set(rule.name, new RuleState(rule, place))
    this.#written.delete(rule.name)
  }

  async #start (): Promise<void> {
    // from the oldest event any rule may still hold: re-read, so that what it held is held again
    let from = this.#seen + 1
    for (const state of this.#states.values()) {
      const { exportedThrough, clock } = state.place
      const periodStart = await this.deps.journal.offsetAt(clock - state.rule.trigger.observationPeriodMs)
      from = Math.min(from, Math.max(exportedThrough + 1, periodStart))
    }
    this.#follow(from)
    this.#timer = setInterval(() => { this.#housekeeping() }, this.deps.checkpointMs ?? 1000)
    this.#timer.unref()
  }

  /** Follows the journal from `from`; a failed read is logged, and following starts again a second later where it stopped. */
  #follow (from: number): void {
    let previous = from - 1
    const follower = follow(this.deps.journal, {
      from,
      accept: () => true,
      deliver: entry => {
        if (entry.offset !== previous + 1 && previous >= this.deps.journal.bounds().first) this.#gap(previous, entry.offset)
        previous = entry.offset
        this.#seen = entry.offset
        let taken = false
        for (const state of this.#states.values()) {
          state.warm(entry)
          const decision = state.take(entry)
          taken ||= state.lastTaken === entry.offset
          if (decision !== undefined && this.#caughtUp) this.#enqueue(state, decision)
        }
        if (taken) this.#remember(entry)
      },
      caughtUp: () => {
        this.#publishReplayed(this.#seen).catch((err: unknown) => {
          this.deps.log('error', 'eventsync.replay-check-failed', { err: (err as Error).message }, 'checking the journal for replayed decisions failed')
        })
      }
    })
    this.#follower = follower
    follower.done.catch((err: unknown) => {
      this.totals.readFailures++
      this.deps.log('error', 'eventsync.follow-failed', { err: (err as Error).message, at: this.#seen + 1 }, 'reading the journal failed: event sync goes on from there in a second')
      setTimeout(() => { if (!this.#closed) this.#follow(this.#seen + 1) }, 1000).unref()
    })
  }

  #gap (previous: number, next: number): void {
    this.totals.gaps += next - previous - 1
    this.deps.log('warn', 'eventsync.gap', { after: previous, next }, 'offsets missing in the journal between two entries (a journal write that failed leaves one)')
  }

  /**
   * Caught up: the decisions re-made while reading back whose combined event the fold did not
   * meet are published — after a second, independent look at the journal between each one's
   * cause and `through` (where the read back ended: a combined event published before this start
   * is there or nowhere). The fold should already have met any it finds; one found is counted and
   * logged as the bug it is, and not published again. Decisions made meanwhile wait their turn:
   * combined events go out in the order decided.
   */
  async #publishReplayed (through: number): Promise<void> {
    const causes = [...this.#states.values()].flatMap(state => [...state.pending.keys()])
    try {
      if (causes.length > 0) await this.#dropPublished(Math.min(...causes) + 1, through)
    } finally {
      this.#caughtUp = true
      for (const state of this.#states.values()) {
        for (const decision of [...state.pending.values()].sort((a, b) => a.cause - b.cause)) this.#enqueue(state, decision)
      }
    }
  }

  /** Looks for combined events of pending decisions in the journal from `from` through `through`. */
  async #dropPublished (from: number, through: number): Promise<void> {
    const states = [...this.#states.values()]
    for (let at = from; at <= through && !this.#closed;) {
      const page = await this.deps.journal.read(at, Math.min(1000, through - at + 1))
      if (page.length === 0) return
      for (const entry of page) {
        if (entry.offset > through) return
        for (const state of states) {
          const cause = state.publishedCause(entry)
          if (cause === undefined || cause >= entry.offset || !state.pending.delete(cause)) continue
          this.totals.republishesAvoided++
          this.deps.log('error', 'eventsync.already-published', { rule: state.rule.name, triggerOffset: cause, at: entry.offset }, 'a replayed decision the fold thought unpublished is in the journal: not published again (a bug: please report it)')
        }
      }
      at = page[page.length - 1]!.offset + 1
    }
  }

  #housekeeping (): void {
    for (const state of this.#states.values()) state.tick()
    this.#checkpoint().catch((err: unknown) => {
      this.deps.log('error', 'eventsync.checkpoint-failed', { err: (err as Error).message }, 'writing where the rules stand failed (a restart re-reads more of the journal)')
    })
  }

  /** Writes where each rule stands, if it moved (before its first unpublished decision). */
  async #checkpoint (): Promise<void> {
    const changed = new Map<string, Checkpoint>()
    for (const [name, state] of this.#states) {
      const checkpoint: Checkpoint = { version: state.rule.version, ...state.resumePlace() }
      const text = JSON.stringify(checkpoint)
      if (this.#written.get(name) === text) continue
      changed.set(name, checkpoint)
      this.#written.set(name, text)
    }
    await this.deps.store.writeCheckpoints(changed)
  }

  /**
   * Publishes a decision: combined events are built one after the other and handed to the
   * broker in the order decided, up to MAX_IN_FLIGHT of them waiting for the journal at once. A
   * failed one is tried again later, backing off — unless the fold has met it in the journal
   * meanwhile (a publish that failed after its append), which ends its pending state.
   */
  #enqueue (state: RuleState, decision: Decision, attempt = 0): void {
    // once: following again after a failed read hands the pending decisions over again
    if (this.#queued.has(decision)) return
    this.#queued.add(decision)
    this.#building = this.#building.then(async () => {
      if (this.#closed || !state.pending.has(decision.cause)) return
      const { rule } = state
      let published: Promise<void>
      try {
        const output = await this.#build(state, decision)
        published = this.deps.publish(rule.target.topic, output.payload)
        published.then(() => {
          this.deps.log('debug', 'eventsync.triggered', { rule: rule.name, triggerType: decision.triggerType, triggerOffset: decision.cause, eventID: output.eventId }, 'combined event published')
        }, () => {})
      } catch (err) {
        published = Promise.reject(err)
      }
      const settled = published.catch((err: unknown) => { this.#retry(state, decision, attempt, err as Error) }).finally(() => { this.#inFlight.delete(settled) })
      this.#inFlight.add(settled)
      if (this.#inFlight.size >= MAX_IN_FLIGHT) await Promise.race(this.#inFlight)
    })
  }

  #retry (state: RuleState, decision: Decision, attempt: number, err: Error): void {
    this.totals.publishFailures++
    this.deps.log('error', 'eventsync.publish-failed', { rule: state.rule.name, triggerOffset: decision.cause, attempt, err: err.message }, 'publishing a combined event failed: trying again')
    if (this.#closed) return
    const timer = setTimeout(() => {
      this.#retries.delete(timer)
      this.#queued.delete(decision)
      this.#enqueue(state, decision, attempt + 1)
    }, Math.min(30_000, 500 * 2 ** attempt))
    this.#retries.add(timer)
  }

  async #build (state: RuleState, decision: Decision): Promise<BuiltOutput> {
    const { rule } = state
    const read = async (from: number, limit: number): Promise<JournalEntry[]> => {
      // the events of a decision just made are mostly in the recent entries: no journal read
      const cached: JournalEntry[] = []
      for (let offset = from; offset < from + limit; offset++) {
        const entry = this.#recent.get(offset)
        if (entry === undefined) return await this.deps.journal.read(from, limit)
        cached.push(entry)
      }
      return cached
    }
    const output = await buildOutput(rule, decision, read, this.deps.maxOutputBytes)
    if (output.leftOut > 0) {
      this.totals.truncated++
      this.deps.log('warn', 'eventsync.truncated', { rule: rule.name, triggerOffset: decision.cause, leftOut: output.leftOut, maxBytes: this.deps.maxOutputBytes }, 'a combined event was too large: some of its events were left out (counted; the events are in the journal)')
    }
    if (output.missing > 0) this.deps.log('warn', 'eventsync.events-missing', { rule: rule.name, triggerOffset: decision.cause, missing: output.missing }, 'events of a combined event were past the journal\'s retention')
    return output
  }

  /** Keeps an entry some rule took, for building combined events without reading it back (bounded). */
  #remember (entry: JournalEntry): void {
    this.#recent.set(entry.offset, entry)
    this.#recentBytes += entry.payload.length
    while (this.#recent.size > RECENT_ENTRIES || this.#recentBytes > RECENT_BYTES) {
      const [offset, oldest] = this.#recent.entries().next().value as [number, JournalEntry]
      this.#recent.delete(offset)
      this.#recentBytes -= oldest.payload.length
    }
  }
}
