import type { Logger } from 'pino'
import type { Journal } from '@firehose/journal'
import { ConfigError } from '@firehose/runtime'
import { endpointPolicy, loadSigningKeys, PushSender, SigningKeyError, Subscriptions, SubscriptionStore, type PullQueue, type PushDeps } from '@firehose/subscriptions'
import type { AccessControl } from '../auth/access-control.js'
import type { PushConfig, SubscriptionsConfig } from '../config/types.js'
import type { SubscriptionTotals } from '../observability/sys-topics.js'
import { entryFilter } from '../http/stream-request.js'

/**
 * The broker's subscriptions, kept in their own LevelDB. Each reads the journal through its
 * filters and its owner's read ACL as it stands (a reloaded ACL applies within a second: pull-queue.ts).
 */
export async function openSubscriptions (config: SubscriptionsConfig, journal: Journal, access: AccessControl, source: string, logger: Logger): Promise<Subscriptions> {
  const push = config.push === false ? undefined : await pushDeps(config.push, source)
  const store = await SubscriptionStore.open(config.dir, { key: 'subscriptions.dir', source })
  const subscriptions = await Subscriptions.open({
    journal,
    store,
    admins: new Set(config.admins),
    filterFor: (owner, topics) => entryFilter(topics, { username: owner, access: access.rulesFor({ username: owner, clientId: '' }), ip: '' }),
    ...(push === undefined ? {} : { push }),
    log: (level, event, fields, message) => { logger[level]({ event, ...fields }, message) }
  }).catch(async (err: unknown) => { await store.close(); throw err })
  logger.info({ event: 'subscriptions.opened', store: config.dir, subscriptions: subscriptions.all().length }, 'subscriptions open')
  return subscriptions
}

/** Push delivery as configured: the signing keys (a key file that cannot be used stops the start, naming it), the sender, the endpoint policy. */
async function pushDeps (config: PushConfig, source: string): Promise<PushDeps & { sender: PushSender }> {
  const keys = await loadSigningKeys(config.keys, config.defaultKeyFile).catch((err: unknown) => {
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
export function subscriptionTotals (queues: readonly PullQueue[]): SubscriptionTotals {
  const totals: SubscriptionTotals = { count: queues.length, delivered: 0, acked: 0, outstanding: 0, deadLetters: 0 }
  for (const queue of queues) {
    totals.delivered += queue.counters.delivered
    totals.acked += queue.counters.acked
    totals.outstanding += queue.outstanding
    totals.deadLetters += queue.state.deadLetters.size
  }
  return totals
}
