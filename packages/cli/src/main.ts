import { createRequire } from 'node:module'
import { bridgeCommand } from './commands/bridge.js'
import { brokerCommand } from './commands/broker.js'
import { historyCommand } from './commands/history.js'
import { passwdCommand } from './commands/passwd.js'
import { subscriptionsCommand } from './commands/subscriptions.js'
import { EXIT } from '@firehose/runtime'
import { BRIDGE_HELP, brokerHelp, HISTORY_HELP, MAIN_HELP, PASSWD_HELP, SUBSCRIPTIONS_HELP } from './help.js'

const { version } = createRequire(import.meta.url)('../package.json') as { version: string }

const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  broker: brokerCommand,
  bridge: bridgeCommand,
  history: historyCommand,
  passwd: passwdCommand,
  subscriptions: subscriptionsCommand
}

/** The `firehose` command. Returns the exit code: 0 ok, 1 failure, 2 bad configuration or usage. */
export async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '-h' || command === '--help') {
    process.stdout.write(MAIN_HELP)
    return command === undefined ? EXIT.usage : EXIT.ok
  }
  if (command === '-v' || command === '--version') {
    process.stdout.write(`firehose ${version}\n`)
    return EXIT.ok
  }
  if (command === 'help') {
    const topic = rest[0]
    process.stdout.write(topic === 'broker' ? brokerHelp() : topic === 'passwd' ? PASSWD_HELP : topic === 'bridge' ? BRIDGE_HELP : topic === 'history' ? HISTORY_HELP : topic === 'subscriptions' ? SUBSCRIPTIONS_HELP : MAIN_HELP)
    return EXIT.ok
  }
  const run = COMMANDS[command]
  if (run === undefined) {
    process.stderr.write(`firehose: unknown command "${command}"\n\n${MAIN_HELP}`)
    return EXIT.usage
  }
  return await run(rest)
}
