import type { Logger } from 'pino'
import { LevelJournal, type Journal } from '@firehose/journal'
import type { JournalConfig } from '../config/types.js'

/** The embedded journal the configuration names, with its retention pass's failures logged. */
export async function openJournal (config: JournalConfig, source: string, logger: Logger): Promise<Journal> {
  const journal = await LevelJournal.open(config.dir, {
    retention: config.retention,
    key: 'journal.dir',
    source,
    onError: err => logger.error({ event: 'journal.retention-failed', err: err.message }, 'journal retention pass failed; it is tried again')
  })
  const { first, last, bytes } = journal.bounds()
  logger.info({ event: 'journal.opened', dir: config.dir, first, last, bytes }, 'journal open')
  return journal
}
