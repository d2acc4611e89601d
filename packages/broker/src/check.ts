import { AccessControl } from './auth/access-control.js'
import type { BrokerConfig } from './config/types.js'

/** Problems in the password and ACL files the configuration names (empty when they are fine). */
export async function checkAccessFiles (config: BrokerConfig): Promise<string[]> {
  return await new AccessControl({ passwordFile: config.passwordFile, aclFile: config.aclFile }).load()
}
