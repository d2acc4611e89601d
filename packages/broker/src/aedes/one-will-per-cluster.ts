import { Readable } from 'node:stream'
import type { PatchContract } from './contract.js'

/** What this uses of the ioredis connection. */
export interface ClaimDb {
  set: (key: string, value: string, px: 'PX', ms: number, nx: 'NX') => Promise<'OK' | null>
}

interface Will { brokerId: string, clientId: string }

/**
 * Written against Aedes 1.2, aedes.js `_clearWills` (every 4 heartbeats each node streams the
 * stored wills of brokers it has not heard from — `persistence.streamWill(brokers)` — and
 * publishes each, then deletes it; its comment says "randomize this, so that multiple brokers do
 * not publish the same wills at the same time", and nothing does) and aedes-persistence-redis
 * 12.0 (`streamWill`). When a node dies, every surviving node publishes its clients' wills; two
 * whose rounds meet publish the same will twice (seen in CI: once in a few runs).
 *
 * Here each will is claimed in Redis before the stream hands it over (`SET ... NX PX`): one
 * node publishes it. The claim lapses after `claimMs`, so a node that died between claiming
 * and publishing leaves the will to the others' next round. Upstream: docs/upstream.md.
 */
export function oneWillPerCluster (persistence: object, db: ClaimDb, node: string, claimMs: number): void {
  const p = persistence as { streamWill: (brokers: Record<string, number>) => AsyncIterable<Will> }
  const streamWill = p.streamWill.bind(p)
  p.streamWill = brokers => Readable.from((async function * claimed () {
    for await (const will of streamWill(brokers)) {
      if (await db.set(`firehose:will-claim:${will.brokerId}:${will.clientId}`, node, 'PX', claimMs, 'NX') === 'OK') yield will
    }
  })())
}

export const oneWillPerClusterContract: PatchContract = {
  patch: 'one-will-per-cluster.ts',
  package: 'aedes',
  writtenAgainst: 'aedes.js (_clearWills: for await over persistence.streamWill(that.brokers), publish, then delWill)',
  sources: {
    'aedes.js': [
      'const wills = that.persistence.streamWill(that.brokers)',
      'for await (const promises of batch(wills, checkAndPublish, batchSize)) {',
      'await pPublish(will)\n        await that.persistence.delWill({'
    ]
  }
}
