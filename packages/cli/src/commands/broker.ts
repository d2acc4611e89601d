import { parseArgs } from 'node:util'
import { checkConfigFiles, loadConfig, startBroker } from '@firehose/broker'
import { ConfigError, createLogger, EXIT, exitCodeFor, runUntilSignalled, type ExitCode } from '@firehose/runtime'
import { brokerHelp } from '../help.js'

/** `firehose broker [--config FILE] [--check]` */
export async function brokerCommand (args: string[]): Promise<ExitCode> {
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
    return EXIT.usage
  }
  if (values.help === true) {
    process.stdout.write(brokerHelp())
    return EXIT.ok
  }

  let config
  try {
    config = await loadConfig(values.config)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`firehose broker: ${err.message}\n`)
    return EXIT.usage
  }
  const logger = createLogger(config.log.level)
  if (values.check === true) {
    const problems = await checkConfigFiles(config)
    if (problems.length > 0) {
      process.stderr.write(`firehose broker: ${new ConfigError(problems, config.source).message}\n`)
      return EXIT.usage
    }
    process.stdout.write(`configuration OK (${config.source})\n`)
    return EXIT.ok
  }

  let broker
  try {
    broker = await startBroker(config, { logger })
  } catch (err) {
    if (err instanceof ConfigError) process.stderr.write(`firehose broker: ${err.message}\n`)
    else logger.fatal({ event: 'broker.failed', err: (err as Error).message }, 'cannot start the broker')
    return exitCodeFor(err)
  }
  const running = broker
  return await runUntilSignalled({ stop: running.close, reload: running.reload }, logger)
}
