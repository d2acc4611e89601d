export { launchpadBridge } from './bridge.js'
