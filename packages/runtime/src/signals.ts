import type { Logger } from 'pino'
import { EXIT, type ExitCode } from './exit-codes.js'

export interface Stoppable {
  /** graceful shutdown: resolves once everything is flushed and closed */
  stop: () => Promise<void>
  /** SIGHUP, when the process supports reloading */
  reload?: () => Promise<unknown>
}

/**
 * Runs until SIGTERM or SIGINT, then stops gracefully; SIGHUP calls `reload` when given.
 * Resolves with the exit code: 0 when the stop went cleanly, 1 when it failed.
 */
export async function runUntilSignalled (running: Stoppable, logger: Logger): Promise<ExitCode> {
  return await new Promise<ExitCode>(resolve => {
    const onHup = (): void => {
      logger.info({ event: 'process.reload' }, 'SIGHUP: reloading')
      running.reload?.().catch((err: unknown) => logger.error({ err }, 'reload failed'))
    }
    const onStop = (signal: NodeJS.Signals): void => {
      logger.info({ event: 'process.stopping', signal }, 'shutting down')
      process.off('SIGHUP', onHup)
      running.stop().then(() => {
        logger.info({ event: 'process.stopped' }, 'stopped')
        resolve(EXIT.ok)
      }, (err: unknown) => {
        logger.error({ err }, 'error during shutdown')
        resolve(EXIT.failure)
      })
    }
    if (running.reload !== undefined) process.on('SIGHUP', onHup)
    process.once('SIGTERM', onStop)
    process.once('SIGINT', onStop)
  })
}
