import { access, constants } from 'node:fs/promises'
import { AccessControl } from './auth/access-control.js'
import type { BrokerConfig } from './config/types.js'
import { cannotRead, ConfigError } from '@firehose/runtime'
import { readTlsOptions } from './listeners/tls-options.js'

/**
 * Problems in the files the configuration names — password file, ACL file, TLS certificates,
 * the Redis password file — found without starting anything or contacting Redis
 * (`firehose broker --check`). Empty when they are fine.
 */
export async function checkConfigFiles (config: BrokerConfig): Promise<string[]> {
  const problems = await new AccessControl({ passwordFile: config.passwordFile, aclFile: config.aclFile }).load()
  for (const [index, listener] of config.listeners.entries()) {
    if (listener.tls === undefined) continue
    try {
      await readTlsOptions(listener.tls, `listeners[${index}]`, config.source)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(...err.problems)
    }
  }
  const redisPassword = config.cluster === false ? undefined : config.cluster.passwordFile
  if (redisPassword !== undefined) {
    await access(redisPassword, constants.R_OK).catch((err: NodeJS.ErrnoException) => {
      problems.push(cannotRead('cluster.passwordFile', redisPassword, err))
    })
  }
  return problems
}
