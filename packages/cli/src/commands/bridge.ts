import { parseArgs } from 'node:util'
import { ansibleBridge, PLUGIN_PATH } from '@firehose/ansible-bridge'
import type { Bridge } from '@firehose/bridge-kit'
import { gerritBridge } from '@firehose/gerrit-bridge'
import { launchpadBridge } from '@firehose/launchpad-bridge'
import { EXIT } from '@firehose/runtime'
import { BRIDGE_HELP } from '../help.js'

export const BRIDGES: ReadonlyMap<string, Bridge> = new Map([gerritBridge, launchpadBridge, ansibleBridge].map(b => [b.name, b]))

/** `firehose bridge <name> --config FILE` */
export async function bridgeCommand (args: string[]): Promise<number> {
  const [name, ...rest] = args
  if (name === undefined || name === '-h' || name === '--help') {
    process.stdout.write(BRIDGE_HELP)
    return name === undefined ? EXIT.usage : EXIT.ok
  }
  if (name === 'ansible' && rest[0] === 'plugin-path') {
    process.stdout.write(PLUGIN_PATH + '\n')
    return EXIT.ok
  }
  const bridge = BRIDGES.get(name)
  if (bridge === undefined) {
    process.stderr.write(`firehose bridge: unknown bridge "${name}" (known: ${[...BRIDGES.keys()].join(', ')})\n\n${BRIDGE_HELP}`)
    return EXIT.usage
  }
  let values
  try {
    ({ values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, strict: true }))
  } catch (err) {
    process.stderr.write(`firehose bridge ${name}: ${(err as Error).message}\n\n${BRIDGE_HELP}`)
    return EXIT.usage
  }
  if (values.help === true) {
    process.stdout.write(BRIDGE_HELP)
    return EXIT.ok
  }
  if (values.config === undefined) {
    process.stderr.write(`firehose bridge ${name}: --config FILE is required (see deploy/${name}-bridge.example.yaml)\n`)
    return EXIT.usage
  }
  return await bridge.run(values.config)
}
