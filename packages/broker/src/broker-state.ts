import type { Aedes, Client } from 'aedes'

/** Aedes keeps connected clients in `broker.clients`, which its type declarations omit. */
export function connectedClients (broker: Aedes): Client[] {
  return Object.values((broker as unknown as { clients: Record<string, Client> }).clients)
}

export function subscriptionCount (broker: Aedes): number {
  let n = 0
  for (const client of connectedClients(broker)) {
    n += Object.keys((client as unknown as { subscriptions: object }).subscriptions).length
  }
  return n
}
