import type { AedesPersistence } from '../store.js'
import type { PatchContract } from './contract.js'

type OutgoingUpdate = (client: object, packet: object) => Promise<unknown>

/**
 * Written against Aedes 1.2, lib/client.js `deliverQoS`: for a persistent session, each QoS
 * 1/2 delivery is written to the subscriber only once `persistence.outgoingUpdate` (its packet
 * id, in the store) resolves — and those take longer for some messages than for others, so a
 * persistent subscriber got a burst out of order, against [MQTT-4.6.0-5].
 *
 * Here each client's updates still run side by side, but resolve in the order they were
 * made, so the writes that wait for them keep the order of the deliveries. Upstream:
 * docs/upstream.md.
 */
export function orderOutgoingUpdates (persistence: AedesPersistence): void {
  const update = (persistence.outgoingUpdate as OutgoingUpdate).bind(persistence)
  /** per client, the last update made: the next one resolves after it */
  const last = new WeakMap<object, Promise<unknown>>()
  persistence.outgoingUpdate = async (client: object, packet: object): Promise<unknown> => {
    const running = update(client, packet)
    // it may fail before its turn comes, when nothing awaits it yet: not an unhandled rejection
    running.catch(() => {})
    const before = last.get(client)
    const inTurn = before === undefined ? running : before.then(async () => await running, async () => await running)
    last.set(client, inTurn)
    inTurn.then(() => { if (last.get(client) === inTurn) last.delete(client) }, () => { if (last.get(client) === inTurn) last.delete(client) })
    return await inTurn
  }
}

export const orderedOutgoingUpdatesContract: PatchContract = {
  patch: 'ordered-outgoing-updates.ts',
  package: 'aedes',
  writtenAgainst: 'lib/client.js (deliverQoS: persistence.outgoingUpdate(that, packet).then(doWriteQoS, doWriteQoS))',
  sources: { 'lib/client.js': ['broker.persistence.outgoingUpdate(that, packet)\n              .then(doWriteQoS, doWriteQoS)'] }
}
