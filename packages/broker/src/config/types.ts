import type { Rule } from '@firehose/event-sync'
export type ListenerProtocol = 'mqtt' | 'websockets'

export interface TlsFiles {
  /** absolute paths */
  cert: string
  key: string
  ca?: string
}

export interface ListenerConfig {
  /** stable label for logs and metrics: mqtt, mqtts, ws or wss, then the port */
  name: string
  port: number
  host?: string
  protocol: ListenerProtocol
  tls?: TlsFiles
}

export interface Limits {
  maxConnections: number
  maxConnectionsPerIp: number
  maxPacketSize: number
  connectTimeout: number
  maxTopicLevels: number
  maxQueuedBytes: number
  maxClientIdLength: number
  maxStreamsPerIp: number
  /** per offline persistent session; 0: no limit */
  maxQueuedMessages: number
  /** ms an offline persistent session is kept: an anonymous client's, a user's; false: forever */
  sessionExpiryMs: number | false
  userSessionExpiryMs: number | false
}

export interface ClusterConfig {
  /** redis:// or rediss:// URL; may hold a password: never log it */
  redis: string
  /** absolute path */
  passwordFile?: string
  node: string
  /** seconds */
  heartbeatInterval: number
}

export interface JournalConfig {
  /** absolute path of its LevelDB; undefined on a cluster node, whose journal is a Redis stream */
  dir: string | undefined
  /** MQTT filters of the topics journaled */
  topics: readonly string[]
  retention: { maxAgeMs: number, maxBytes: number }
}

export interface PushConfig {
  issuer: string
  /** absolute paths */
  keys: ReadonlyArray<{ file: string, kid?: string }>
  allowedEndpoints: readonly string[]
  /** ms before each retry */
  retryScheduleMs: readonly number[]
  concurrency: number
  timeoutMs: number
  /** the broker's own signing key, made on first start when `keys` is empty; undefined on a cluster node (the cluster's is kept in Redis) */
  defaultKeyFile: string | undefined
}

export interface SubscriptionsConfig {
  /** absolute path of their LevelDB; undefined on a cluster node (they are kept in Redis, shared by the nodes) */
  dir: string | undefined
  admins: readonly string[]
  /** false: push subscriptions are refused */
  push: PushConfig | false
}

export interface EventSyncConfig {
  /** absolute path of its LevelDB (where each rule stands, and the rules made through the API); undefined on a cluster node (in Redis) */
  dir: string | undefined
  /** the configuration's rules, checked */
  rules: readonly Rule[]
}

export interface BrokerConfig {
  listeners: readonly ListenerConfig[]
  passwordFile?: string
  aclFile?: string
  /** false: in memory only (state is lost on restart); unused by a cluster node (its state is in Redis) */
  persistence: { dir: string } | false
  /** false: a single node */
  cluster: ClusterConfig | false
  /** seconds between $SYS/broker updates; 0 disables them */
  sysInterval: number
  limits: Limits
  /** false: no journal (switched off, or a broker without persistence and without journal.dir) */
  journal: JournalConfig | false
  /** false: none (switched off, or no journal to read) */
  subscriptions: SubscriptionsConfig | false
  /** false: none (switched off, or no journal) */
  eventSync: EventSyncConfig | false
  admin: { host: string; port: number } | false
  log: { level: string }
  /** where the configuration came from, for messages */
  source: string
}
