import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createLogger, loadBridgeConfig, readSecret, runUntilSignalled, startBridge } from '@firehose/bridge-kit'
import { ConfigError } from '@firehose/config'
import { ansibleSchema } from './config.js'
import { AnsibleReceiver } from './receiver.js'

/** The directory to point ANSIBLE_CALLBACK_PLUGINS at. */
export const PLUGIN_PATH = fileURLToPath(new URL('../plugin/callback', import.meta.url))

/** `firehose bridge ansible --config FILE`: the receiver, until SIGTERM; returns the exit code. */
export async function runAnsibleBridge (configFile: string): Promise<number> {
  const { common, bridge: ansible, baseDir } = await loadBridgeConfig(configFile, 'ansible', 'ansible', ansibleSchema)
  const abs = (p: string): string => resolve(baseDir, p)
  if ((ansible.token === undefined) === (ansible.tokenFile === undefined)) throw new ConfigError(['ansible: give token or tokenFile (one of them)'], common.source)
  const token = ansible.token ?? await readSecret(abs(ansible.tokenFile!), 'ansible.tokenFile', common.source)
  if (token.length < 16) throw new ConfigError(['ansible.tokenFile: the token needs at least 16 characters'], common.source)
  let tls: { cert: Buffer, key: Buffer } | undefined
  if (ansible.tls !== undefined) {
    const read = async (field: 'cert' | 'key'): Promise<Buffer> => await readFile(abs(ansible.tls![field])).catch((err: NodeJS.ErrnoException) => {
      throw new ConfigError([`ansible.tls.${field}: cannot read ${abs(ansible.tls![field])}: ${err.code ?? err.message}`], common.source)
    })
    tls = { cert: await read('cert'), key: await read('key') }
  }
  const logger = createLogger(common.log.level, `firehose-bridge-${common.name}`)
  const receiver = new AnsibleReceiver({ ansible, token, ...(tls === undefined ? {} : { tls }) })
  const bridge = await startBridge(common, receiver, logger)
  return await runUntilSignalled(bridge, logger)
}
