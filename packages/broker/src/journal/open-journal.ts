import type { Logger } from 'pino'
import { LevelJournal, RedisJournal, type Journal } from '@firehose/journal'
import type { ClusterBackends } from '../cluster/redis-backends.js'
import type { JournalConfig } from '../config/types.js'

/**
 * The journal the configuration names: embedded (LevelDB) on a single broker, the shared Redis
 * stream on a cluster node; failures of its background work (retention, following the stream)
 * are logged, and tried again.
 */
export async function openJournal (config: JournalConfig, source: string, logger: Logger, cluster: ClusterBackends | undefined): Promise<Journal> {
  const onError = (err: Error): void => logger.error({ event: 'journal.background-failed', err: err.message }, 'journal retention or stream following failed; it is tried again')
  const journal = config.dir === undefined
    ? await openOnRedis(config, cluster, onError)
    : await LevelJournal.open(config.dir, { retention: config.retention, key: 'journal.dir', source, onError })
  const { first, last, bytes } = journal.bounds()
  logger.info({ event: 'journal.opened', store: config.dir ?? 'redis', first, last, bytes }, 'journal open')
  return journal
}

async function openOnRedis (config: JournalConfig, cluster: ClusterBackends | undefined, onError: (err: Error) => void): Promise<Journal> {
  if (cluster === undefined) throw new Error('journal: no journal.dir and no cluster to keep it in')
  return await RedisJournal.open({ ...cluster.journal, retention: config.retention, onError })
}
