import { logSchema } from '@firehose/runtime'
import { z } from 'zod'

const port = z.number().int().min(0).max(65535)
const seconds = z.number().positive()

const tlsSchema = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
  ca: z.string().min(1).optional()
})

const listenerSchema = z.strictObject({
  port,
  host: z.string().min(1).optional(),
  protocol: z.enum(['mqtt', 'websockets']),
  tls: tlsSchema.optional()
})

const limitsSchema = z.strictObject({
  /** all connections on all listeners */
  maxConnections: z.number().int().positive().default(20000),
  /** concurrent connections from one source address */
  maxConnectionsPerIp: z.number().int().positive().default(500),
  /** largest MQTT packet accepted from a client, in bytes (header included) */
  maxPacketSize: z.number().int().min(64).max(268435460).default(1048576),
  /** seconds a new connection may take to send CONNECT */
  connectTimeout: seconds.default(10),
  /** topic levels in a PUBLISH, SUBSCRIBE or UNSUBSCRIBE */
  maxTopicLevels: z.number().int().min(1).max(100).default(100),
  /** bytes waiting to be written to one client before it is disconnected as stalled */
  maxQueuedBytes: z.number().int().min(1024).default(4194304),
  /** longest client id (MQTT 3.1.1 allows more than 23; keep ids sane) */
  maxClientIdLength: z.number().int().min(23).max(65535).default(256),
  /** messages kept for one offline persistent session; past it the oldest go, counted (0: no limit) */
  maxQueuedMessages: z.number().int().min(0).default(1000),
  /** an anonymous client's persistent session, offline this long, is removed: seconds, a duration (1d), or never (checked in load.ts) */
  sessionExpiry: z.union([z.number(), z.string()]).default('1d'),
  /** the same for a user's persistent session */
  userSessionExpiry: z.union([z.number(), z.string()]).default('never'),
  /** concurrent history streams (SSE, WebSocket) from one source address */
  maxStreamsPerIp: z.number().int().positive().default(20)
}).prefault({})

/** Also applied to FIREHOSE_REDIS_URL and FIREHOSE_NODE (load.ts). */
export const REDIS_URL = /^rediss?:\/\/\S+$/
export const NODE_NAME = /^[A-Za-z0-9._-]+$/
export const NODE_NAME_MAX = 64
export const DEFAULT_HEARTBEAT_INTERVAL = 5

const clusterSchema = z.strictObject({
  /** redis://[:password@]host:port/db or rediss:// for TLS */
  redis: z.string().regex(REDIS_URL, 'expected a redis:// or rediss:// URL'),
  /** the Redis password, if not in the URL */
  passwordFile: z.string().min(1).optional(),
  /** this node's name, in logs and in its broker id (default: the host name) */
  node: z.string().min(1).max(NODE_NAME_MAX).regex(NODE_NAME, 'letters, digits, ".", "_" and "-" only').optional(),
  /** seconds between a node's heartbeats; a node silent for 3 of them is dead and its clients' wills are published */
  heartbeatInterval: z.number().positive().max(600).default(DEFAULT_HEARTBEAT_INTERVAL)
})

const journalSchema = z.strictObject({
  /** its own LevelDB (default: journal/ inside persistence.dir) */
  dir: z.string().min(1).optional(),
  /** MQTT filters of the topics kept; `#` is everything outside $SYS */
  topics: z.array(z.string().min(1)).min(1).default(['#']),
  retention: z.strictObject({
    /** seconds, or a string with a unit: 90s, 12h, 7d (checked in load.ts) */
    maxAge: z.union([z.number(), z.string()]).default('7d'),
    /** bytes, or a string with a unit: 512MiB, 1GiB (checked in load.ts) */
    maxBytes: z.union([z.number(), z.string()]).default('1GiB')
  }).prefault({})
}).prefault({})

export const pushSchema = z.strictObject({
  /** the JWT's iss */
  issuer: z.string().min(1).default('firehose'),
  /** PKCS#8 PEM private keys, Ed25519 or RSA: the first signs, all are published (default: the broker's own Ed25519 key) */
  keys: z.array(z.strictObject({ file: z.string().min(1), kid: z.string().min(1).optional() })).default([]),
  /** URL patterns push endpoints must match; `*` matches any characters */
  allowedEndpoints: z.array(z.string().min(1)).default(['https://*']),
  /** waits before each retry of a failed POST (durations); the last failure past them goes to the dead letters */
  retrySchedule: z.array(z.union([z.number(), z.string()])).min(1).default(['10s', '30s', '1m', '5m', '15m', '30m', '1h', '2h', '4h', '8h', '8h']),
  /** POSTs in flight per subscription */
  concurrency: z.number().int().min(1).max(256).default(4),
  /** how long a POST may take (duration) */
  timeout: z.union([z.number(), z.string()]).default('30s')
})

const subscriptionsSchema = z.strictObject({
  /** their LevelDB (default: subscriptions/ inside persistence.dir) */
  dir: z.string().min(1).optional(),
  /** users who see and manage every user's subscriptions */
  admins: z.array(z.string().min(1)).default([]),
  /** push (webhook) delivery; `push: false` refuses push subscriptions */
  push: z.union([z.literal(false), pushSchema]).prefault({})
}).optional()

export const configSchema = z.strictObject({
  listeners: z.array(listenerSchema).optional(),
  passwordFile: z.string().min(1).optional(),
  aclFile: z.string().min(1).optional(),
  // `persistence: false` and `admin: false` are taken out before validation (see load.ts), so
  // that a mistake inside the object is reported by key rather than as a failed union
  persistence: z.strictObject({ dir: z.string().min(1) }).optional(),
  /** one node of a cluster sharing subscriptions, retained messages and sessions through Redis */
  cluster: clusterSchema.optional(),
  sysInterval: z.number().int().min(0).default(10),
  limits: limitsSchema,
  /** every accepted publish kept with an offset and a timestamp, for replay; `journal: false` keeps none */
  journal: journalSchema,
  /** named pull queues over the journal, owned by users (the journal is needed); `subscriptions: false` serves none */
  subscriptions: subscriptionsSchema,
  /** rules that publish one combined event when their sources have all reported (checked in load.ts); `eventSync: false` serves none */
  eventSync: z.array(z.unknown()).optional(),
  admin: z.strictObject({ host: z.string().min(1).default('127.0.0.1'), port: port.default(9883) }).optional(),
  log: logSchema
})

export type RawConfig = z.infer<typeof configSchema>
