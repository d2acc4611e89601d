import { EventSync, type EventSyncDeps } from './event-sync.js'
import { parseRule, storedDefinition, type Rule } from './rule.js'
import type { RuleState } from './rule-state.js'
import type { RedisEventSyncStore } from './redis-store.js'
import { commands, EventSyncError, stateView, type EventSyncService, type EventSyncTotals } from './service.js'

export interface ClusterEventSyncDeps extends Omit<EventSyncDeps, 'store'> {
  store: RedisEventSyncStore
  /** this node's id (the lock's value) */
  node: string
  /** ms the lock lasts unless renewed: how long the rules wait after their node dies */
  lockMs?: number
  /** ms between looks at the lock and at the rules made on other nodes */
  syncMs?: number
}

/** How long the lock lasts unless renewed: the rules run again this long after their node dies. */
export const LOCK_MS = 5000

/**
 * Event sync on a cluster node. One node at a time runs the rules — the one holding the lock in
 * Redis, renewed every second, lapsing 5 s after its node dies — with an EventSync that follows
 * the cluster's journal and keeps its checkpoints in Redis; when another node takes over, it
 * starts from those checkpoints, re-reads the shared journal, finds the combined events already
 * published and publishes the rest. Every node serves the API: events, triggers and resets are
 * journaled through its own broker (the running node folds them in), rules made or deleted on
 * any node reach the running one within a second, and GET .../state on a node that does not run
 * the rules answers what the running one last wrote (at most a second old).
 */
export class ClusterEventSync implements EventSyncService {
  #engine: EventSync | undefined
  readonly #config = new Map<string, Rule>()
  #stored = new Map<string, Rule>()
  #version: string | undefined
  #timer: NodeJS.Timeout | undefined
  #syncing: Promise<void> = Promise.resolve()
  /** the engine being opened (the lock is held, the journal being re-read) */
  #opening: Promise<void> | undefined
  /** whether this node held the lock at the last look */
  #holding = false
  #closed = false
  readonly #idleTotals: EventSyncTotals = { truncated: 0, publishFailures: 0, readFailures: 0, republishesAvoided: 0, gaps: 0 }

  private constructor (private readonly deps: ClusterEventSyncDeps, configRules: readonly Rule[]) {
    for (const rule of configRules) this.#config.set(rule.name, rule)
  }

  static async open (configRules: readonly Rule[], deps: ClusterEventSyncDeps): Promise<ClusterEventSync> {
    const sync = new ClusterEventSync(deps, configRules)
    await sync.#sync()
    sync.#timer = setInterval(() => {
      sync.#syncing = sync.#syncing.then(async () => { await sync.#sync() }).catch((err: unknown) => {
        deps.log('error', 'eventsync.cluster-sync-failed', { err: (err as Error).message }, 'event sync could not reach Redis: trying again in a second')
      })
    }, deps.syncMs ?? 1000)
    sync.#timer.unref()
    return sync
  }

  get totals (): EventSyncTotals {
    return this.#engine?.totals ?? this.#idleTotals
  }

  rules (): Rule[] {
    return [...this.#config.values(), ...[...this.#stored.values()].filter(r => !this.#config.has(r.name))]
  }

  rule (name: string): Rule | undefined {
    return this.#config.get(name) ?? this.#stored.get(name)
  }

  isConfigured (name: string): boolean {
    return this.#config.has(name)
  }

  running (): RuleState[] {
    return this.#engine?.all() ?? []
  }

  async state (name: string): Promise<Record<string, unknown> | undefined> {
    if (this.rule(name) === undefined) return undefined
    const here = this.#engine?.get(name)
    if (here !== undefined) return { ...stateView(here), node: this.deps.node }
    // run elsewhere: as the running node last wrote it (none yet: it has not started the rule)
    return await this.deps.store.readState(name) ?? { name, node: null, starting: true }
  }

  async create (rule: Rule): Promise<void> {
    if (this.#config.has(rule.name)) throw new EventSyncError(409, `name: a rule named "${rule.name}" exists`)
    if (this.#engine !== undefined) {
      await this.#engine.create(rule)
    } else if (!await this.deps.store.putRule(rule.name, { owner: rule.owner!, definition: storedDefinition(rule), created: (this.deps.now ?? Date.now)() })) {
      throw new EventSyncError(409, `name: a rule named "${rule.name}" exists`)
    }
    this.#stored.set(rule.name, rule)
  }

  async remove (name: string): Promise<void> {
    if (this.#config.has(name)) throw new EventSyncError(409, `"${name}" is a rule of the broker's configuration: remove it there`)
    if (!this.#stored.has(name)) throw new EventSyncError(404, `no rule named "${name}"`)
    if (this.#engine !== undefined) await this.#engine.remove(name)
    else await this.deps.store.deleteRule(name)
    this.#stored.delete(name)
  }

  async postEvent (name: string, eventKey: string, body: Parameters<EventSyncService['postEvent']>[2], user: string): Promise<void> {
    await commands.event(this.rule(name), name, eventKey, body, user, this.deps.publish)
  }

  async trigger (name: string, user: string): Promise<void> {
    await commands.trigger(this.rule(name), name, user, this.deps.publish)
  }

  async reset (name: string, user: string): Promise<void> {
    await commands.reset(this.rule(name), name, user, this.deps.publish)
  }

  async replaceConfigRules (rules: readonly Rule[]): Promise<void> {
    await this.#engine?.replaceConfigRules(rules)
    this.#config.clear()
    for (const rule of rules) this.#config.set(rule.name, rule)
  }

  /** Stops running the rules (writing where they stand) and lets the lock go, for another node to take at once. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    await this.#syncing
    await this.#opening
    if (this.#engine !== undefined) {
      await this.#engine.close()
      this.#engine = undefined
      await this.deps.store.releaseLock(this.deps.node)
    }
  }

  /** Once a second: the rules made on other nodes, the lock (taken, kept or lost), and the state the others show. */
  async #sync (): Promise<void> {
    if (this.#closed) return
    const { store, node } = this.deps
    const version = await store.version()
    if (version !== this.#version) {
      const stored = new Map<string, Rule>()
      const raw = await store.rules()
      for (const [name, s] of raw) {
        try {
          stored.set(name, parseRule(s.definition, '', s.owner))
        } catch {}
      }
      this.#stored = stored
      this.#version = version
      await this.#engine?.syncStoredRules(raw)
    }
    const held = await store.holdLock(node, this.deps.lockMs ?? LOCK_MS)
    this.#holding = held
    if (held && this.#engine === undefined && this.#opening === undefined) {
      // not waited for: re-reading the journal may take longer than the lock lasts, and the
      // lock is renewed meanwhile
      this.#opening = EventSync.open([...this.#config.values()], this.deps).then(async engine => {
        this.#opening = undefined
        if (this.#closed || !this.#holding) {
          await engine.close({ handOver: true })
          return
        }
        this.#engine = engine
        this.deps.log('info', 'eventsync.running', { node }, 'this node runs the event-sync rules')
      }, (err: unknown) => {
        this.#opening = undefined
        this.deps.log('error', 'eventsync.open-failed', { node, err: (err as Error).message }, 'event sync could not start here: trying again in a second')
      })
    } else if (!held && this.#engine !== undefined) {
      // another node holds the lock (this one was too slow to renew it): it runs them now
      const engine = this.#engine
      this.#engine = undefined
      await engine.close({ handOver: true })
      this.deps.log('warn', 'eventsync.lock-lost', { node }, 'another node runs the event-sync rules now')
    }
    if (this.#engine !== undefined) {
      await store.writeStates(new Map(this.#engine.all().map(s => [s.rule.name, { ...stateView(s), node, at: new Date().toISOString() }])))
    }
  }
}
