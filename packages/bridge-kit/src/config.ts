import { dirname, resolve } from 'node:path'
import { ConfigError, deepFreeze, logSchema, parseYaml, readConfigText, readConfiguredFile, readSecret, validate } from '@firehose/runtime'
import { z } from 'zod'

const seconds = z.number().positive()

/** The keys every bridge's config file has; each bridge adds its own section. */
export const commonShape = {
  /** status topic firehose/bridges/<name>, default client id firehose-bridge-<name> */
  name: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, - and _ only').optional(),
  mqtt: z.strictObject({
    /** tried in turn: mqtt://, mqtts://, ws://, wss:// */
    urls: z.array(z.string().regex(/^(mqtt|mqtts|ws|wss):\/\/[^/\s]+/, 'expected mqtt://, mqtts://, ws:// or wss://HOST[:PORT]')).min(1),
    username: z.string().min(1).optional(),
    password: z.string().optional(),
    /** a file holding the password (first line), so the config itself can be world-readable */
    passwordFile: z.string().min(1).optional(),
    /** CA certificate for mqtts:// and wss:// */
    ca: z.string().min(1).optional(),
    clientId: z.string().min(1).max(256).optional(),
    keepalive: z.number().int().min(5).max(3600).default(30),
    /** seconds to wait for the broker's PUBCOMP before the connection is considered dead */
    publishTimeout: seconds.default(30)
  }),
  outbox: z.strictObject({
    dir: z.string().min(1),
    /** events waiting for the broker; past it the bridge stops reading its source */
    maxEvents: z.number().int().positive().default(100000),
    /** how long the keys of published events are kept to recognise replays */
    dedupeDays: z.number().positive().default(14)
  }),
  backoff: z.strictObject({
    initial: seconds.default(1),
    max: seconds.default(60)
  }).prefault({}),
  metrics: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535)
  }).optional(),
  log: logSchema
}

type CommonFile = z.output<z.ZodObject<typeof commonShape>>
export type CommonConfig = CommonFile & { name: string, source: string, mqtt: { password?: string } }

export interface LoadedConfig<T> { common: CommonConfig, bridge: T, baseDir: string }

/** A bridge's whole config file: the common keys plus its own `section`, validated together. */
export function bridgeFileSchema (section: string, sectionSchema: z.ZodType): z.ZodType {
  return z.strictObject({ ...commonShape, [section]: sectionSchema })
}

/**
 * Loads a bridge's config file: the common keys plus the bridge's own `section`, validated
 * together so every problem is reported at once. Relative paths resolve against the file.
 */
export async function loadBridgeConfig<T> (file: string, defaultName: string, section: string, fileSchema: z.ZodType): Promise<LoadedConfig<T>> {
  const path = resolve(file)
  const baseDir = dirname(path)
  const data = parseYaml(await readConfigText(path), path)
  const parsed = validate(fileSchema, data, path) as CommonFile & Record<string, unknown>
  const abs = (p: string): string => resolve(baseDir, p)
  const mqtt = { ...parsed.mqtt, ...(parsed.mqtt.ca ? { ca: abs(parsed.mqtt.ca) } : {}) }
  if (parsed.mqtt.passwordFile !== undefined) {
    if (parsed.mqtt.password !== undefined) throw new ConfigError(['mqtt.passwordFile: give password or passwordFile, not both'], path)
    mqtt.password = await readSecret(abs(parsed.mqtt.passwordFile), 'mqtt.passwordFile', path)
  }
  if (mqtt.ca !== undefined) await readConfiguredFile(mqtt.ca, 'mqtt.ca', path)
  const name = parsed.name ?? defaultName
  const common = deepFreeze({
    ...parsed,
    name,
    mqtt,
    outbox: { ...parsed.outbox, dir: abs(parsed.outbox.dir) },
    source: path
  }) as CommonConfig
  return { common, bridge: parsed[section] as T, baseDir }
}
