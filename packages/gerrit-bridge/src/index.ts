export { gerritBridge } from './bridge.js'
