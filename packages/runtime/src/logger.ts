import { pino, type Logger } from 'pino'

/** JSON lines for journald and log shippers; pretty only when a person watches a terminal. */
export function createLogger (level: string, name = 'firehose'): Logger {
  const pretty = process.stdout.isTTY === true
  return pino({
    name,
    level,
    // credentials must never reach a log, whatever a caller passes in
    redact: { paths: ['password', '*.password', 'passphrase', '*.passphrase', 'privateKey', '*.privateKey'], censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } } : {})
  })
}
