import { ConfigError } from './config/errors.js'

/**
 * Every `firehose` command exits with one of these. The rule: 2 when a person must change
 * the configuration or the command line before trying again (systemd's
 * RestartPreventExitStatus=2 stops retrying); 1 for anything that may pass by itself — a port
 * in use, a store directory locked by another process, an unreachable Redis — so systemd
 * retries.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const
export type ExitCode = typeof EXIT[keyof typeof EXIT]

/** The exit code for an error that stopped a command from starting. */
export function exitCodeFor (err: unknown): ExitCode {
  return err instanceof ConfigError ? EXIT.usage : EXIT.failure
}
