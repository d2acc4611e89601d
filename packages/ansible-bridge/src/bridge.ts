import { fileURLToPath } from 'node:url'
import { defineBridge } from '@firehose/bridge-kit'
import { ConfigError } from '@firehose/runtime'
import { ansibleSchema } from './config.js'
import { AnsibleReceiver } from './receiver.js'

/** The directory to point ANSIBLE_CALLBACK_PLUGINS at. */
export const PLUGIN_PATH = fileURLToPath(new URL('../plugin/callback', import.meta.url))

/** `firehose bridge ansible --config FILE`: the receiver of the callback plugin's events -> ansible/playbook/<uuid>/... */
export const ansibleBridge = defineBridge({
  name: 'ansible',
  section: 'ansible',
  schema: ansibleSchema,
  createSource: async (ansible, { common, readFile, secret, backoff }) => {
    const token = await secret('ansible', 'token', ansible.token, ansible.tokenFile)
    if (token.length < 16) throw new ConfigError(['ansible.tokenFile: the token needs at least 16 characters'], common.source)
    const tls = ansible.tls === undefined
      ? undefined
      : { cert: await readFile('ansible.tls.cert', ansible.tls.cert), key: await readFile('ansible.tls.key', ansible.tls.key) }
    return new AnsibleReceiver({ ansible, token, ...(tls === undefined ? {} : { tls }), backoff })
  }
})
