import type { Logger } from 'pino'
import type { Journal } from '@firehose/journal'
import { ConfigError } from '@firehose/runtime'
import { endpointPolicy, loadSigningKeys, newSigningKey, PushSender, RedisSubscriptionStore, SigningKeyError, Subscriptions, SubscriptionStore, type PushDeps, type Queue, type SubscriptionBackend } from '@firehose/subscriptions'
import type { AccessControl } from '../auth/access-control.js'
import type { ClusterBackends } from '../cluster/redis-backends.js'
import type { PushConfig, SubscriptionsConfig } from '../config/types.js'
import type { SubscriptionTotals } from '../observability/sys-topics.js'
import { entryFilter } from '../http/stream-request.js'

/**
 * The broker's subscriptions, kept in their own LevelDB, or on a cluster node in Redis, shared by
 * every node. Each reads the journal through its filters and its owner's read ACL as it stands
 * (a reloaded ACL applies within a second: filter-cache.ts).
 */
export async function openSubscriptions (config: SubscriptionsConfig, journal: Journal, access: AccessControl, source: string, logger: Logger, cluster: ClusterBackends | undefined): Promise<Subscriptions> {
  const store: SubscriptionBackend = config.dir === undefined
    ? onRedis(cluster)
    : await SubscriptionStore.open(config.dir, { key: 'subscriptions.dir', source })
  const push = config.push === false
    ? undefined
    : await pushDeps(config.push, source, store instanceof RedisSubscriptionStore ? store : undefined).catch(async (err: unknown) => { await store.close(); throw err })
  const subscriptions = await Subscriptions.open({
    journal,
    store,
    admins: new Set(config.admins),
    filterFor: (owner, topics) => entryFilter(topics, { username: owner, access: access.rulesFor({ username: owner, clientId: '' }), ip: '' }),
    ...(push === undefined ? {} : { push }),
    log: (level, event, fields, message) => { logger[level]({ event, ...fields }, message) }
  }).catch(async (err: unknown) => { await store.close(); throw err })
  logger.info({ event: 'subscriptions.opened', store: config.dir ?? 'redis', subscriptions: subscriptions.all().length }, 'subscriptions open')
  return subscriptions
}

function onRedis (cluster: ClusterBackends | undefined): RedisSubscriptionStore {
  if (cluster === undefined) throw new Error('subscriptions: no subscriptions.dir and no cluster to keep them in')
  return new RedisSubscriptionStore({ db: cluster.journal.db, node: cluster.id })
}

/**
 * Push delivery as configured: the signing keys (a key file that cannot be used stops the
 * start, naming it), the sender, the endpoint policy. A cluster without configured keys signs
 * with one default key kept in Redis, so that every node publishes the key any node signs with.
 */
async function pushDeps (config: PushConfig, source: string, shared: RedisSubscriptionStore | undefined): Promise<PushDeps & { sender: PushSender }> {
  const defaultKey = shared === undefined ? config.defaultKeyFile! : async () => await shared.sharedSigningKey(newSigningKey)
  const keys = await loadSigningKeys(config.keys, defaultKey).catch((err: unknown) => {
    if (!(err instanceof SigningKeyError)) throw err
    throw new ConfigError([`subscriptions.push.keys${err.index === undefined ? ' (the default key)' : `[${err.index}].file`}: ${err.message}`], source)
  })
  return {
    sender: new PushSender({ issuer: config.issuer, keys, timeoutMs: config.timeoutMs }),
    retrySchedule: config.retryScheduleMs,
    concurrency: config.concurrency,
    refuseEndpoint: endpointPolicy(config.allowedEndpoints)
  }
}

/** Sums over every subscription, for $SYS (which anyone may read: no names). */
export function subscriptionTotals (queues: readonly Queue[]): SubscriptionTotals {
  const totals: SubscriptionTotals = { count: queues.length, delivered: 0, acked: 0, outstanding: 0, deadLetters: 0 }
  for (const queue of queues) {
    totals.delivered += queue.counters.delivered
    totals.acked += queue.counters.acked
    totals.outstanding += queue.outstanding
    totals.deadLetters += queue.deadLetterCount
  }
  return totals
}
