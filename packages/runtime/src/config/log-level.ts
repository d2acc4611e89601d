import { z } from 'zod'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]

/** The `log:` section every process's config file has. */
export const logSchema = z.strictObject({
  level: z.enum(LOG_LEVELS).default('info')
}).prefault({})

/** FIREHOSE_LOG_LEVEL and the like: undefined when unset, else the level or a problem naming the variable. */
export function logLevelFromEnv (name: string, value: string | undefined, problems: string[]): LogLevel | undefined {
  if (value === undefined || value === '') return undefined
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel
  problems.push(`${name}: "${value}" is not one of ${LOG_LEVELS.join(', ')}`)
  return undefined
}
