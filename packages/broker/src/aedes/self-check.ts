import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Duplex } from 'node:stream'
import type { Aedes } from 'aedes'
import { expectSource, type PatchContract, type Probe } from './contract.js'
import { dropDeniedPublishesContract } from './drop-denied-publishes.js'
import { exactDedupeContract } from './exact-dedupe.js'
import { fastRecordsContract } from './fast-records.js'
import { clientInternals } from './internals.js'
import { internalsContract } from './internals-contract.js'
import { journalBeforePublishContract } from './journal-before-publish.js'
import { qos0FanOutContract, qos0FastPathContract } from './qos0-fast-path.js'
import { recordQos2AfterPublishContract } from './record-qos2-after-publish.js'
import { sharedAddSubscriptionsContract } from './shared-add-subscriptions.js'
import { redisAtomicPubrelContract } from './redis-atomic-pubrel.js'
import { mqemitterDrainLoopContract } from './mqemitter-drain-loop.js'
import { orderedOutgoingUpdatesContract } from './ordered-outgoing-updates.js'
import { orderedPublishesContract } from './ordered-publishes.js'
import { publishBeforePubackContract } from './publish-before-puback.js'
import { queueBeforeLiveContract } from './queue-before-live.js'
import { qos2PublishedOnceChannelContract, qos2PublishedOnceContract } from './qos2-published-once.js'
import { CLUSTER_ONLY, inSeries, installedDir, installedVersion, WRITTEN_FOR, type PatchedPackage } from './versions.js'
import { strictPacketsContract } from './strict-packets.js'
import { tidyLevelStoreContract } from './tidy-level-store.js'
import { levelSessionLimitsContract } from './level-session-limits.js'
import { memorySessionLimitsContract } from './memory-session-limits.js'
import { redisSessionLimitsContract } from './redis-session-limits.js'
import { sessionLimitsContract } from './session-limits.js'
import { closeWatchContract } from './close-watch.js'
import { inflightOnDemandContract } from './inflight-on-demand.js'
import { oneWillPerClusterContract } from './one-will-per-cluster.js'
import { parserBufferListContract } from './parser-buffer-list.js'
import { parserSettingsContract } from './parser-settings.js'
import { writeCoalescerContract } from './write-coalescer.js'

/** Every patch in this folder, for the self-check; those on Redis packages apply to cluster nodes only. */
export const CONTRACTS: readonly PatchContract[] = [
  internalsContract,
  qos0FastPathContract,
  qos0FanOutContract,
  writeCoalescerContract,
  dropDeniedPublishesContract,
  recordQos2AfterPublishContract,
  redisAtomicPubrelContract,
  mqemitterDrainLoopContract,
  exactDedupeContract,
  orderedPublishesContract,
  sharedAddSubscriptionsContract,
  orderedOutgoingUpdatesContract,
  publishBeforePubackContract,
  queueBeforeLiveContract,
  qos2PublishedOnceContract,
  qos2PublishedOnceChannelContract,
  journalBeforePublishContract,
  strictPacketsContract,
  parserBufferListContract,
  parserSettingsContract,
  closeWatchContract,
  fastRecordsContract,
  inflightOnDemandContract,
  tidyLevelStoreContract,
  sessionLimitsContract,
  levelSessionLimitsContract,
  memorySessionLimitsContract,
  redisSessionLimitsContract,
  oneWillPerClusterContract
]

/** Refuses to start: a patch in src/aedes/ would not apply to the installed dependency. */
export class AedesPatchError extends Error {
  readonly code = 'FIREHOSE_AEDES_PATCH'
}

/** The installed package's directory. */
export function packageDir (pkg: PatchedPackage): string {
  return installedDir(pkg)
}

/**
 * Verifies at start what each patch in this folder assumes of the installed Aedes (and, for a
 * cluster node, aedes-persistence-redis): the version series it was written for, and every
 * field, function and source line it relies on, inspected on a throwaway client made for a
 * connection that never sends a byte. Throws an AedesPatchError naming each patch that would
 * not apply, and why, so the broker refuses to start rather than silently running without it.
 */
export interface CheckOptions {
  cluster: boolean
  /** reads an installed source file (tests give another) */
  readSource?: (pkg: PatchedPackage, file: string) => string
}

export function checkAedesPatches (broker: Aedes, options: CheckOptions, contracts: readonly PatchContract[] = CONTRACTS): void {
  const used = contracts.filter(c => options.cluster || !CLUSTER_ONLY.has(c.package))
  const problems: string[] = []
  for (const pkg of new Set(used.map(c => c.package))) {
    const version = installedVersion(pkg)
    if (!inSeries(version, WRITTEN_FOR[pkg])) {
      problems.push(`${pkg} ${version} is installed, but the patches in packages/broker/src/aedes/ (${used.filter(c => c.package === pkg).map(c => c.patch).join(', ')}) were written for ${WRITTEN_FOR[pkg]}.x: run npm ci, or re-check each patch against the new source and update aedes/versions.ts and the pin in packages/broker/package.json`)
    }
  }
  if (problems.length === 0) {
    const sources = new Map<string, string>()
    const source = options.readSource ?? ((pkg: PatchedPackage, file: string): string => {
      const path = join(packageDir(pkg), file)
      let text = sources.get(path)
      if (text === undefined) {
        try {
          text = readFileSync(path, 'utf8')
        } catch {
          text = ''
        }
        sources.set(path, text)
      }
      return text
    })
    const conn = new Duplex({ read () {}, write (_chunk, _encoding, callback) { callback() } })
    const client = clientInternals(broker.handle(conn))
    const probe: Probe = { broker, client, source }
    try {
      for (const contract of used) {
        const found: string[] = []
        for (const [file, fragments] of Object.entries(contract.sources ?? {})) expectSource(found, source(contract.package, file), file, fragments)
        found.push(...(contract.verify?.(probe) ?? []))
        for (const problem of found) {
          problems.push(`${contract.patch} (written against ${contract.package} ${WRITTEN_FOR[contract.package]}, ${contract.writtenAgainst}): ${problem} in ${contract.package} ${installedVersion(contract.package)}`)
        }
      }
    } finally {
      client.close()
      conn.destroy()
    }
  }
  if (problems.length > 0) throw new AedesPatchError(`Aedes patches do not apply:\n  - ${problems.join('\n  - ')}`)
}
