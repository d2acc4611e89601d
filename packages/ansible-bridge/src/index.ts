export { ansibleBridge, PLUGIN_PATH } from './bridge.js'
