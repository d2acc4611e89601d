import { checkConfigFiles, ConfigError, loadConfig, startBroker } from '@firehose/broker'
import { parseArgs } from 'node:util'
import { brokerHelp } from '../help.js'
import { createLogger } from '@firehose/bridge-kit'

export async function brokerCommand (args: string[]): Promise<number> {
  let values
  try {
    ({ values } = parseArgs({
      args,
      options: {
        config: { type: 'string', short: 'c' },
        check: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true,
      allowPositionals: false
    }))
  } catch (err) {
    process.stderr.write(`firehose broker: ${(err as Error).message}\n\n${brokerHelp()}`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(brokerHelp())
    return 0
  }

  let config
  try {
    config = await loadConfig(values.config)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`firehose broker: ${err.message}\n`)
      return 2
    }
    throw err
  }
  const logger = createLogger(config.log.level)
  if (values.check === true) {
    const problems = await checkConfigFiles(config)
    if (problems.length > 0) {
      process.stderr.write(`firehose broker: ${new ConfigError(problems, config.source).message}\n`)
      return 2
    }
    process.stdout.write(`configuration OK (${config.source})\n`)
    return 0
  }

  let broker
  try {
    broker = await startBroker(config, { logger })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`firehose broker: ${err.message}\n`)
      return 2
    }
    logger.fatal({ err: (err as Error).message }, 'cannot start the broker')
    return 1
  }

  const running = broker
  return await new Promise<number>(resolve => {
    const onHup = (): void => {
      logger.info('SIGHUP: reloading users, ACL and certificates')
      running.reload().catch((err: unknown) => logger.error({ err }, 'reload failed'))
    }
    const onStop = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'shutting down')
      process.off('SIGHUP', onHup)
      running.close().then(() => {
        logger.info('stopped')
        resolve(0)
      }, (err: unknown) => {
        logger.error({ err }, 'error during shutdown')
        resolve(1)
      })
    }
    process.on('SIGHUP', onHup)
    process.once('SIGTERM', onStop)
    process.once('SIGINT', onStop)
  })
}
