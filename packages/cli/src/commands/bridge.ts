import { ConfigError } from '@firehose/config'
import { PLUGIN_PATH, runAnsibleBridge } from '@firehose/ansible-bridge'
import { runGerritBridge } from '@firehose/gerrit-bridge'
import { runLaunchpadBridge } from '@firehose/launchpad-bridge'
import { parseArgs } from 'node:util'
import { BRIDGE_HELP } from '../help.js'

const BRIDGES: Record<string, (configFile: string) => Promise<number>> = {
  gerrit: runGerritBridge,
  launchpad: runLaunchpadBridge,
  ansible: runAnsibleBridge
}

/** `firehose bridge <name> --config FILE` */
export async function bridgeCommand (args: string[]): Promise<number> {
  const [name, ...rest] = args
  if (name === undefined || name === '-h' || name === '--help') {
    process.stdout.write(BRIDGE_HELP)
    return name === undefined ? 2 : 0
  }
  if (name === 'ansible' && rest[0] === 'plugin-path') {
    process.stdout.write(PLUGIN_PATH + '\n')
    return 0
  }
  const run = BRIDGES[name]
  if (run === undefined) {
    process.stderr.write(`firehose bridge: unknown bridge "${name}" (known: ${Object.keys(BRIDGES).join(', ')})\n\n${BRIDGE_HELP}`)
    return 2
  }
  let values
  try {
    ({ values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true }))
  } catch (err) {
    process.stderr.write(`firehose bridge ${name}: ${(err as Error).message}\n\n${BRIDGE_HELP}`)
    return 2
  }
  if (values.help === true) {
    process.stdout.write(BRIDGE_HELP)
    return 0
  }
  if (values.config === undefined) {
    process.stderr.write(`firehose bridge ${name}: --config FILE is required (see deploy/${name}-bridge.example.yaml)\n`)
    return 2
  }
  try {
    return await run(values.config)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`firehose bridge ${name}: ${err.message}\n`)
      return 2
    }
    process.stderr.write(`firehose bridge ${name}: ${(err as Error).message}\n`)
    return 1
  }
}
