import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { createLogger, loadBridgeConfig, readSecret, runUntilSignalled, startBridge } from '@firehose/bridge-kit'
import { ConfigError } from '@firehose/config'
import { gerritSchema } from './config.js'
import { EventsLogClient } from './events-log.js'
import { GerritStreamSource } from './stream-source.js'

/** `firehose bridge gerrit --config FILE`: runs until SIGTERM; returns the exit code. */
export async function runGerritBridge (configFile: string): Promise<number> {
  const { common, bridge: gerrit, baseDir } = await loadBridgeConfig(configFile, 'gerrit', 'gerrit', gerritSchema)
  const abs = (p: string): string => resolve(baseDir, p)
  const resolved = { ...gerrit, privateKey: abs(gerrit.privateKey), knownHosts: abs(gerrit.knownHosts) }
  const privateKey = await readFile(resolved.privateKey).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError([`gerrit.privateKey: cannot read ${resolved.privateKey}: ${err.code ?? err.message}`], common.source)
  })
  await readFile(resolved.knownHosts).catch((err: NodeJS.ErrnoException) => {
    throw new ConfigError([`gerrit.knownHosts: cannot read ${resolved.knownHosts}: ${err.code ?? err.message}`], common.source)
  })
  let eventsLog: EventsLogClient | undefined
  if (gerrit.eventsLog !== undefined) {
    const { url, username, password, passwordFile } = gerrit.eventsLog
    if ((password === undefined) === (passwordFile === undefined)) throw new ConfigError(['gerrit.eventsLog: give password or passwordFile (one of them)'], common.source)
    const secret = password ?? await readSecret(abs(passwordFile!), 'gerrit.eventsLog.passwordFile', common.source)
    eventsLog = new EventsLogClient({ url, username, password: secret })
  }
  const logger = createLogger(common.log.level, `firehose-bridge-${common.name}`)
  const source = new GerritStreamSource({
    gerrit: resolved,
    privateKey,
    ...(eventsLog === undefined ? {} : { eventsLog }),
    backoff: { initialMs: common.backoff.initial * 1000, maxMs: common.backoff.max * 1000 }
  })
  const bridge = await startBridge(common, source, logger)
  return await runUntilSignalled(bridge, logger)
}
