import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { createLogger, loadBridgeConfig, readSecret, runUntilSignalled, startBridge } from '@firehose/bridge-kit'
import { ConfigError } from '@firehose/config'
import { imapSchema } from './config.js'
import { MailboxSource } from './mailbox-source.js'

/** `firehose bridge launchpad --config FILE`: runs until SIGTERM; returns the exit code. */
export async function runLaunchpadBridge (configFile: string): Promise<number> {
  const { common, bridge: imap, baseDir } = await loadBridgeConfig(configFile, 'launchpad', 'imap', imapSchema)
  const abs = (p: string): string => resolve(baseDir, p)
  if ((imap.password === undefined) === (imap.passwordFile === undefined)) throw new ConfigError(['imap: give password or passwordFile (one of them)'], common.source)
  const password = imap.password ?? await readSecret(abs(imap.passwordFile!), 'imap.passwordFile', common.source)
  const ca = imap.ca === undefined
    ? undefined
    : await readFile(abs(imap.ca)).catch((err: NodeJS.ErrnoException) => { throw new ConfigError([`imap.ca: cannot read ${abs(imap.ca!)}: ${err.code ?? err.message}`], common.source) })
  const logger = createLogger(common.log.level, `firehose-bridge-${common.name}`)
  const source = new MailboxSource({ imap, password, ...(ca === undefined ? {} : { ca }), backoff: { initialMs: common.backoff.initial * 1000, maxMs: common.backoff.max * 1000 } })
  const bridge = await startBridge(common, source, logger)
  return await runUntilSignalled(bridge, logger)
}
