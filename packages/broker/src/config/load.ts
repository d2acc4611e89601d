import { hostname } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseRules, unjournaledTopic } from '@firehose/event-sync'
import { parseByteSize, parseDuration } from '@firehose/journal'
import { ConfigError, deepFreeze, filterCovers, isValidFilter, logLevelFromEnv, parseYaml, readConfigText, topicMatches, validate } from '@firehose/runtime'
import { portFromEnv, type EnvName } from './env.js'
import { configSchema, DEFAULT_HEARTBEAT_INTERVAL, NODE_NAME, NODE_NAME_MAX, pushSchema, REDIS_URL, type RawConfig } from './schema.js'
import type { BrokerConfig, ListenerConfig, SubscriptionsConfig } from './types.js'

export interface LoadOptions {
  env?: NodeJS.ProcessEnv
  /** base for relative paths when there is no config file */
  cwd?: string
}

type Kind = 'mqtt' | 'mqtts' | 'ws' | 'wss'

const KIND_ENV: Record<Kind, EnvName> = {
  mqtt: 'FIREHOSE_MQTT_PORT',
  mqtts: 'FIREHOSE_MQTTS_PORT',
  ws: 'FIREHOSE_WS_PORT',
  wss: 'FIREHOSE_WSS_PORT'
}
const DEFAULT_PORTS: Record<Kind, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 8080 }

/**
 * Reads, validates and freezes the broker configuration. With no file, the defaults
 * (four listeners, embedded persistence in ./data, admin on 127.0.0.1:9883) apply.
 * Every problem found is reported at once, each naming its key.
 */
export async function loadConfig (file: string | undefined, options: LoadOptions = {}): Promise<BrokerConfig> {
  if (file === undefined) return parseConfig(undefined, { source: 'defaults', baseDir: options.cwd ?? process.cwd(), env: options.env })
  const path = resolve(options.cwd ?? process.cwd(), file)
  return parseConfig(await readConfigText(path), { source: path, baseDir: dirname(path), env: options.env })
}

export interface ParseOptions { source: string; baseDir: string; env?: NodeJS.ProcessEnv }

export function parseConfig (yamlText: string | undefined, { source, baseDir, env = process.env }: ParseOptions): BrokerConfig {
  const problems: string[] = []
  const data = yamlText === undefined ? {} : parseYaml(yamlText, source)
  const { switchedOff, rest } = takeFalse(data, ['persistence', 'admin', 'journal', 'subscriptions', 'eventSync'])
  const config = resolveConfig(validate(configSchema, rest, source), switchedOff, baseDir, env, problems)
  if (problems.length > 0) throw new ConfigError(problems, source)
  return deepFreeze({ ...config, source })
}

function resolveConfig (raw: RawConfig, off: ReadonlySet<string>, baseDir: string, env: NodeJS.ProcessEnv, problems: string[]): Omit<BrokerConfig, 'source'> {
  const abs = (p: string): string => resolve(baseDir, p)
  const defaultTls = {
    cert: abs(env.FIREHOSE_TLS_CERT ?? 'certs/dev/server.crt'),
    key: abs(env.FIREHOSE_TLS_KEY ?? 'certs/dev/server.key')
  }
  const listeners: ListenerConfig[] = (raw.listeners ?? (Object.keys(DEFAULT_PORTS) as Kind[]).map(kind => defaultListener(kind, defaultTls)))
    .map(l => ({
      ...l,
      name: '',
      ...(l.tls ? { tls: { cert: abs(l.tls.cert), key: abs(l.tls.key), ...(l.tls.ca ? { ca: abs(l.tls.ca) } : {}) } } : {})
    }))

  for (const kind of Object.keys(KIND_ENV) as Kind[]) {
    const port = portFromEnv(env, KIND_ENV[kind], problems)
    if (port === undefined) continue
    const index = listeners.findIndex(l => kindOf(l) === kind)
    if (port === false) {
      if (index >= 0) listeners.splice(index, 1)
    } else if (index >= 0) {
      listeners[index] = { ...listeners[index]!, port }
    } else {
      listeners.push({ ...defaultListener(kind, defaultTls), port, name: '' })
    }
  }
  for (const l of listeners) l.name = `${kindOf(l)}:${l.port}`

  const seen = new Set<string>()
  listeners.forEach((l, i) => {
    const key = `${l.host ?? '*'}:${l.port}`
    if (l.port !== 0 && seen.has(key)) problems.push(`listeners[${i}].port: ${l.port} is used by another listener on the same host`)
    seen.add(key)
  })

  let admin: BrokerConfig['admin'] = off.has('admin') ? false : { host: raw.admin?.host ?? '127.0.0.1', port: raw.admin?.port ?? 9883 }
  const adminPort = portFromEnv(env, 'FIREHOSE_ADMIN_PORT', problems)
  if (adminPort === false) admin = false
  else if (adminPort !== undefined) admin = { host: admin === false ? '127.0.0.1' : admin.host, port: adminPort }

  const level = logLevelFromEnv('FIREHOSE_LOG_LEVEL', env.FIREHOSE_LOG_LEVEL, problems) ?? raw.log.level

  const cluster = resolveCluster(raw.cluster, env, abs, problems)
  if (cluster !== false && raw.persistence !== undefined) problems.push('persistence: a cluster node keeps its state in Redis; remove persistence (or cluster)')

  const persistence: BrokerConfig['persistence'] = off.has('persistence') || cluster !== false ? false : { dir: abs(raw.persistence?.dir ?? env.FIREHOSE_DATA_DIR ?? 'data') }
  const journal = resolveJournal(raw.journal, off.has('journal'), persistence, cluster, abs, problems)
  return {
    listeners,
    ...(raw.passwordFile ? { passwordFile: abs(raw.passwordFile) } : {}),
    ...(raw.aclFile ? { aclFile: abs(raw.aclFile) } : {}),
    persistence,
    journal,
    subscriptions: resolveSubscriptions(raw.subscriptions, off.has('subscriptions'), journal, persistence, cluster, abs, problems),
    eventSync: resolveEventSync(raw.eventSync, off.has('eventSync'), journal, persistence, cluster, problems),
    cluster,
    sysInterval: raw.sysInterval,
    limits: resolveLimits(raw.limits, problems),
    admin,
    log: { level }
  }
}

/** The limits, with the session expiries as ms (false: never). */
function resolveLimits (raw: RawConfig['limits'], problems: string[]): BrokerConfig['limits'] {
  const expiry = (key: 'sessionExpiry' | 'userSessionExpiry'): number | false => {
    const value = raw[key]
    if (value === 'never') return false
    const ms = parseDuration(value)
    if (ms === undefined) problems.push(`limits.${key}: ${JSON.stringify(value)} is not a duration (seconds, or a number with s, m, h, d or w: 90s, 12h, 1d), nor never`)
    return ms ?? false
  }
  const { sessionExpiry, userSessionExpiry, ...rest } = raw
  return { ...rest, sessionExpiryMs: expiry('sessionExpiry'), userSessionExpiryMs: expiry('userSessionExpiry') }
}

/** The cluster section, with FIREHOSE_REDIS_URL and FIREHOSE_NODE applied over it (the file's values are already validated). */
function resolveCluster (raw: RawConfig['cluster'], env: NodeJS.ProcessEnv, abs: (p: string) => string, problems: string[]): BrokerConfig['cluster'] {
  const envUrl = nonEmpty(env.FIREHOSE_REDIS_URL)
  const envNode = nonEmpty(env.FIREHOSE_NODE)
  const url = envUrl ?? raw?.redis
  if (url === undefined) {
    if (envNode !== undefined) problems.push('FIREHOSE_NODE: names a cluster node, but there is no cluster (set cluster.redis or FIREHOSE_REDIS_URL)')
    return false
  }
  if (envUrl !== undefined && !REDIS_URL.test(envUrl)) problems.push('FIREHOSE_REDIS_URL: expected a redis:// or rediss:// URL')
  const node = envNode ?? raw?.node ?? hostname()
  if (!NODE_NAME.test(node) || node.length > NODE_NAME_MAX) {
    const what = `is not a node name (letters, digits, ".", "_" and "-", at most ${NODE_NAME_MAX})`
    problems.push(envNode !== undefined ? `FIREHOSE_NODE: "${node}" ${what}` : `cluster.node: the host name "${node}" ${what}; set cluster.node or FIREHOSE_NODE`)
  }
  return {
    redis: url,
    ...(raw?.passwordFile === undefined ? {} : { passwordFile: abs(raw.passwordFile) }),
    node,
    heartbeatInterval: raw?.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL
  }
}

function resolveJournal (raw: RawConfig['journal'], off: boolean, persistence: BrokerConfig['persistence'], cluster: BrokerConfig['cluster'], abs: (p: string) => string, problems: string[]): BrokerConfig['journal'] {
  raw.topics.forEach((filter, i) => {
    if (!isValidFilter(filter)) problems.push(`journal.topics[${i}]: "${filter}" is not an MQTT topic filter`)
  })
  const maxAgeMs = parseDuration(raw.retention.maxAge)
  if (maxAgeMs === undefined) problems.push(`journal.retention.maxAge: ${JSON.stringify(raw.retention.maxAge)} is not a duration (seconds, or a number with s, m, h, d or w: 90s, 12h, 7d)`)
  const maxBytes = parseByteSize(raw.retention.maxBytes)
  if (maxBytes === undefined) problems.push(`journal.retention.maxBytes: ${JSON.stringify(raw.retention.maxBytes)} is not a size (bytes, or a number with KiB, MiB, GiB, KB, MB or GB: 512MiB, 1GiB)`)
  if (off || maxAgeMs === undefined || maxBytes === undefined) return false
  if (cluster !== false) {
    if (raw.dir !== undefined) problems.push('journal.dir: a cluster node keeps its journal in Redis (a stream every node shares); remove journal.dir')
    return { dir: undefined, topics: raw.topics, retention: { maxAgeMs, maxBytes } }
  }
  const dir = raw.dir !== undefined ? abs(raw.dir) : persistence === false ? undefined : join(persistence.dir, 'journal')
  if (dir === undefined) return false
  return { dir, topics: raw.topics, retention: { maxAgeMs, maxBytes } }
}

/**
 * Subscriptions read the journal: on by default wherever there is one to read and a place to
 * keep them (a disk, or a cluster's Redis). Asked for explicitly where they cannot be served,
 * the configuration says why.
 */
function resolveSubscriptions (raw: RawConfig['subscriptions'], off: boolean, journal: BrokerConfig['journal'], persistence: BrokerConfig['persistence'], cluster: BrokerConfig['cluster'], abs: (p: string) => string, problems: string[]): BrokerConfig['subscriptions'] {
  if (off) return false
  if (journal === false) {
    if (raw !== undefined) problems.push('subscriptions: they read the journal, and this broker keeps none (journal: false, or no persistence and no journal.dir)')
    return false
  }
  if (cluster !== false) {
    // kept in Redis, where every node serves every subscription
    if (raw?.dir !== undefined) problems.push('subscriptions.dir: a cluster node keeps its subscriptions in Redis (shared by every node); remove subscriptions.dir')
    return { dir: undefined, admins: raw?.admins ?? [], push: resolvePush(raw === undefined ? pushSchema.parse({}) : raw.push, undefined, abs, problems) }
  }
  const dir = raw?.dir !== undefined ? abs(raw.dir) : persistence === false ? undefined : join(persistence.dir, 'subscriptions')
  if (dir === undefined) {
    if (raw !== undefined) problems.push('subscriptions.dir: needed when persistence is false (subscriptions are kept on disk)')
    return false
  }
  return { dir, admins: raw?.admins ?? [], push: resolvePush(raw === undefined ? pushSchema.parse({}) : raw.push, dir, abs, problems) }
}

/**
 * Event sync reads the journal and keeps where each rule stands beside the broker's other state
 * (on a cluster node, in Redis): on by default wherever there is a journal (rules can also be
 * made through the API).
 * Each rule's topics must be journaled (its combined events are how it knows what it published),
 * and its period held by the journal.
 */
function resolveEventSync (raw: unknown[] | undefined, off: boolean, journal: BrokerConfig['journal'], persistence: BrokerConfig['persistence'], cluster: BrokerConfig['cluster'], problems: string[]): BrokerConfig['eventSync'] {
  if (off) return false
  const { rules, problems: ruleProblems } = parseRules(raw ?? [])
  problems.push(...ruleProblems)
  if (journal === false) {
    if (raw !== undefined && raw.length > 0) problems.push('eventSync: its rules read the journal, and this broker keeps none (journal: false, or no persistence and no journal.dir)')
    return false
  }
  const journaled = (topic: string): boolean => journal.topics.some(filter => topicMatches(filter, topic))
  rules.forEach((rule, i) => {
    const missing = unjournaledTopic(rule, journaled)
    if (missing !== undefined) problems.push(`eventSync[${i}]: the journal does not keep ${missing} (journal.topics: ${journal.topics.join(', ')}), and the rule needs it`)
    rule.endpoints.forEach((endpoint, j) => {
      if (!endpoint.http && !journal.topics.some(filter => filterCovers(filter, endpoint.topic))) problems.push(`eventSync[${i}].endpoints[${j}].topic: the journal does not keep all of ${endpoint.topic} (journal.topics: ${journal.topics.join(', ')})`)
    })
    if (rule.trigger.observationPeriodMs > journal.retention.maxAgeMs) problems.push(`eventSync[${i}].trigger.observationPeriod: ${rule.trigger.observationPeriodMs / 1000} s is longer than the journal keeps events (journal.retention.maxAge: ${journal.retention.maxAgeMs / 1000} s)`)
  })
  // on a cluster node, in Redis (journal.dir is undefined there)
  const dir = cluster !== false || journal.dir === undefined ? undefined : persistence === false ? join(dirname(journal.dir), 'event-sync') : join(persistence.dir, 'event-sync')
  return { dir, rules }
}

function resolvePush (push: NonNullable<RawConfig['subscriptions']>['push'], dir: string | undefined, abs: (p: string) => string, problems: string[]): SubscriptionsConfig['push'] {
  if (push === false) return false
  const retryScheduleMs = push.retrySchedule.map((step, i) => {
    const ms = parseDuration(step)
    if (ms === undefined) problems.push(`subscriptions.push.retrySchedule[${i}]: ${JSON.stringify(step)} is not a duration (seconds, or 90s, 15m, 12h, 7d)`)
    return ms ?? 0
  })
  const timeoutMs = parseDuration(push.timeout)
  if (timeoutMs === undefined || timeoutMs <= 0) problems.push(`subscriptions.push.timeout: ${JSON.stringify(push.timeout)} is not a duration above 0 (seconds, or 30s, 2m)`)
  push.allowedEndpoints.forEach((pattern, i) => {
    if (!/^https?:\/\/[^/]+/i.test(pattern)) problems.push(`subscriptions.push.allowedEndpoints[${i}]: "${pattern}" is not an http:// or https:// URL pattern (https://*.example.org/*)`)
  })
  return {
    issuer: push.issuer,
    keys: push.keys.map(k => ({ file: abs(k.file), ...(k.kid === undefined ? {} : { kid: k.kid }) })),
    allowedEndpoints: push.allowedEndpoints,
    retryScheduleMs,
    concurrency: push.concurrency,
    timeoutMs: timeoutMs ?? 0,
    defaultKeyFile: dir === undefined ? undefined : join(dirname(dir), 'push-signing-key.pem')
  }
}

const nonEmpty = (value: string | undefined): string | undefined => value === '' ? undefined : value

/** Keys whose value `false` switches a feature off; taken out before schema validation. */
function takeFalse (data: unknown, keys: string[]): { switchedOff: Set<string>, rest: unknown } {
  const switchedOff = new Set<string>()
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return { switchedOff, rest: data }
  const rest: Record<string, unknown> = { ...data }
  for (const key of keys) {
    if (rest[key] === false) {
      switchedOff.add(key)
      delete rest[key]
    }
  }
  return { switchedOff, rest }
}

type RawListener = NonNullable<RawConfig['listeners']>[number]

function defaultListener (kind: Kind, tls: { cert: string, key: string }): RawListener {
  const protocol = kind === 'mqtt' || kind === 'mqtts' ? 'mqtt' : 'websockets'
  return kind === 'mqtts' || kind === 'wss'
    ? { port: DEFAULT_PORTS[kind], protocol, tls }
    : { port: DEFAULT_PORTS[kind], protocol }
}

function kindOf (l: { protocol: string, tls?: unknown }): Kind {
  if (l.protocol === 'mqtt') return l.tls ? 'mqtts' : 'mqtt'
  return l.tls ? 'wss' : 'ws'
}
