import type { Redis } from 'ioredis'
import type { Checkpoint, EventSyncBackend, StoredRule } from './store.js'

const PREFIX = 'firehose:eventsync:'
const KEYS = {
  /** name -> Checkpoint (written by the node that runs the rules) */
  checkpoints: `${PREFIX}checkpoints`,
  /** name -> StoredRule (made through the API on any node) */
  rules: `${PREFIX}rules`,
  /** bumped at each change to the rules: nodes look every second */
  version: `${PREFIX}version`,
  /** name -> what GET .../state shows, written every second by the node that runs the rules */
  states: `${PREFIX}states`,
  /** the node that runs the rules */
  lock: `${PREFIX}lock`
}

/** KEYS: the lock. ARGV: this node's id, ms. Takes or renews the lock; 1 when this node holds it. */
const HOLD_LOCK = `local holder = redis.call('get', KEYS[1])
if holder == ARGV[1] then redis.call('pexpire', KEYS[1], ARGV[2]) return 1 end
if holder then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

/** KEYS: the lock. ARGV: this node's id. Lets the lock go, if this node holds it. */
const RELEASE_LOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
return 0`

/** KEYS: rules, version. ARGV: name, rule. Takes a name once, cluster-wide. */
const PUT_RULE = `if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('incr', KEYS[2])
return 1`

/**
 * Event sync on a cluster, in the cluster's Redis: the rules made through the API (any node
 * makes and deletes them), where each rule stands, the state each rule shows, and the lock that
 * names the one node that runs the rules.
 */
export class RedisEventSyncStore implements EventSyncBackend {
  constructor (private readonly db: Redis) {}

  async checkpoints (): Promise<Map<string, Checkpoint>> {
    return parsed<Checkpoint>(await this.db.hgetall(KEYS.checkpoints))
  }

  async rules (): Promise<Map<string, StoredRule>> {
    return parsed<StoredRule>(await this.db.hgetall(KEYS.rules))
  }

  async writeCheckpoints (checkpoints: ReadonlyMap<string, Checkpoint>): Promise<void> {
    if (checkpoints.size === 0) return
    await this.db.hset(KEYS.checkpoints, Object.fromEntries([...checkpoints].map(([name, c]) => [name, JSON.stringify(c)])))
  }

  async putRule (name: string, rule: StoredRule): Promise<boolean> {
    return await this.db.eval(PUT_RULE, 2, KEYS.rules, KEYS.version, name, JSON.stringify(rule)) === 1
  }

  async deleteRule (name: string): Promise<void> {
    await this.db.multi().hdel(KEYS.rules, name).hdel(KEYS.checkpoints, name).hdel(KEYS.states, name).incr(KEYS.version).exec()
  }

  /** Changes whenever a rule is made or deleted. */
  async version (): Promise<string> {
    return await this.db.get(KEYS.version) ?? '0'
  }

  /** Takes the lock, or keeps it, for `ms`; whether this node holds it. */
  async holdLock (node: string, ms: number): Promise<boolean> {
    return await this.db.eval(HOLD_LOCK, 1, KEYS.lock, node, String(ms)) === 1
  }

  async releaseLock (node: string): Promise<void> {
    await this.db.eval(RELEASE_LOCK, 1, KEYS.lock, node)
  }

  async writeStates (states: ReadonlyMap<string, Record<string, unknown>>): Promise<void> {
    if (states.size === 0) return
    await this.db.hset(KEYS.states, Object.fromEntries([...states].map(([name, s]) => [name, JSON.stringify(s)])))
  }

  async readState (name: string): Promise<Record<string, unknown> | undefined> {
    const text = await this.db.hget(KEYS.states, name)
    return text === null ? undefined : JSON.parse(text) as Record<string, unknown>
  }

  /** The connection is the cluster's: nothing to close. */
  async close (): Promise<void> {}
}

function parsed<T> (hash: Record<string, string>): Map<string, T> {
  return new Map(Object.entries(hash).map(([name, text]) => [name, JSON.parse(text) as T]))
}
