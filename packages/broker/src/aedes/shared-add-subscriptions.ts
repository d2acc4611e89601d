import type { AedesPersistence } from '../store.js'
import type { PatchContract } from './contract.js'

type AddSubscriptions = (client: unknown, subs: object[]) => Promise<unknown>

/**
 * Written against Aedes 1.2, lib/handlers/subscribe.js (`storeSubscriptions` runs once per
 * filter of a SUBSCRIBE, each time storing the packet's whole list) and aedes-persistence 11,
 * broadcastPersistence.js (`addedSubscriptions` waits for its own broadcast under the key
 * `<client id>-sub_<first filter>`). For a persistent session subscribing to two or more
 * filters at once, the second store replaced the first one's waiter, which never resolved:
 * the SUBACK never came (a cluster node on Redis; `mosquitto_sub -c -t a -t b` hung).
 *
 * Here the stores of one SUBSCRIBE share one call: the packet's list is the same array each
 * time, so a call with an array already being stored gets that call's promise. The list is
 * written once instead of once per filter. Upstream: docs/upstream.md.
 */
export function shareAddSubscriptions (persistence: AedesPersistence): void {
  const add = (persistence.addSubscriptions as AddSubscriptions).bind(persistence)
  const storing = new WeakMap<object[], Promise<unknown>>()
  persistence.addSubscriptions = async (client: unknown, subs: object[]): Promise<unknown> => {
    let pending = storing.get(subs)
    if (pending === undefined) {
      pending = add(client, subs)
      storing.set(subs, pending)
      pending.then(() => storing.delete(subs), () => storing.delete(subs))
    }
    return await pending
  }
}

export const sharedAddSubscriptionsContract: PatchContract = {
  patch: 'shared-add-subscriptions.ts',
  package: 'aedes',
  writtenAgainst: 'lib/handlers/subscribe.js (storeSubscriptions: persistence.addSubscriptions(client, packet.subscriptions), once per filter)',
  sources: { 'lib/handlers/subscribe.js': ['client.broker.persistence.addSubscriptions(client, packet.subscriptions)'] }
}
