export { ansibleSchema, type AnsibleConfig } from './config.js'
export { requestSchema, topicFor, type AnsibleEvent } from './events.js'
export { PLUGIN_PATH, runAnsibleBridge } from './main.js'
export { AnsibleReceiver } from './receiver.js'
