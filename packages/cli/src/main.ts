import { createRequire } from 'node:module'
import { EXIT } from '@firehose/runtime'
import { BRIDGE_HELP, brokerHelp, HISTORY_HELP, MAIN_HELP, PASSWD_HELP, SUBSCRIPTIONS_HELP } from './help.js'

const { version } = createRequire(import.meta.url)('../package.json') as { version: string }

/** Each command loaded when it is run: the broker does not load the bridges' libraries (IMAP, mail, SSH), nor they the broker's. */
const COMMANDS: Record<string, () => Promise<(args: string[]) => Promise<number>>> = {
  broker: async () => (await import('./commands/broker.js')).brokerCommand,
  bridge: async () => (await import('./commands/bridge.js')).bridgeCommand,
  history: async () => (await import('./commands/history.js')).historyCommand,
  passwd: async () => (await import('./commands/passwd.js')).passwdCommand,
  subscriptions: async () => (await import('./commands/subscriptions.js')).subscriptionsCommand
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
  const load = COMMANDS[command]
  if (load === undefined) {
    process.stderr.write(`firehose: unknown command "${command}"\n\n${MAIN_HELP}`)
    return EXIT.usage
  }
  return await (await load())(rest)
}
