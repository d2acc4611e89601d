/** Environment variables that override the configuration; listed in `firehose broker --help`. */
export const ENV_VARS = {
  FIREHOSE_MQTT_PORT: 'port of the MQTT listener (default 1883; "off" disables it)',
  FIREHOSE_MQTTS_PORT: 'port of the MQTT/TLS listener (default 8883; "off" disables it)',
  FIREHOSE_WS_PORT: 'port of the WebSocket listener (default 80; "off" disables it)',
  FIREHOSE_WSS_PORT: 'port of the WebSocket/TLS listener (default 8080; "off" disables it)',
  FIREHOSE_ADMIN_PORT: 'port of the admin HTTP server on 127.0.0.1 (default 9883; "off" disables it)',
  FIREHOSE_TLS_CERT: 'server certificate for the default TLS listeners (default certs/dev/server.crt)',
  FIREHOSE_TLS_KEY: 'server key for the default TLS listeners (default certs/dev/server.key)',
  FIREHOSE_DATA_DIR: 'persistence directory when the config names none (default ./data)',
  FIREHOSE_REDIS_URL: 'makes the broker a cluster node on this Redis (redis://host:port), as cluster.redis does',
  FIREHOSE_NODE: 'this cluster node\'s name (default: the host name), as cluster.node does',
  FIREHOSE_LOG_LEVEL: 'log level: fatal, error, warn, info, debug, trace or silent'
} as const

export type EnvName = keyof typeof ENV_VARS

/** Reads a port override: undefined when unset, false for "off", else the port. */
export function portFromEnv (env: NodeJS.ProcessEnv, name: EnvName, problems: string[]): number | false | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  if (raw === 'off') return false
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
    problems.push(`${name}: "${raw}" is not a port number (0-65535) or "off"`)
    return undefined
  }
  return Number(raw)
}
