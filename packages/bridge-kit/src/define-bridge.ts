import { resolve } from 'node:path'
import type { z } from 'zod'
import { ConfigError, createLogger, exitCodeFor, readConfiguredFile, readSecret, runUntilSignalled, type ExitCode } from '@firehose/runtime'
import { startBridge, type Source } from './bridge.js'
import { bridgeFileSchema, loadBridgeConfig, type CommonConfig } from './config.js'

/** What a bridge's `createSource` gets besides its validated section. */
export interface BridgeContext {
  common: CommonConfig
  /** `backoff:` in milliseconds, for the source's reconnect loop */
  backoff: { initialMs: number, maxMs: number }
  /** an absolute path for one given in the config file (relative to the file) */
  path: (p: string) => string
  /** a file the config names (relative paths resolved); unreadable: a ConfigError naming `key` */
  readFile: (key: string, p: string) => Promise<Buffer>
  /**
   * A secret given inline (`key.name`) or in a file (`key.nameFile`, its first line): exactly
   * one of the two, or a ConfigError naming both.
   */
  secret: (key: string, name: string, inline: string | undefined, file: string | undefined) => Promise<string>
}

export interface BridgeDefinition<S extends z.ZodType> {
  /** `firehose bridge <name>`; the default status name (`firehose/bridges/<name>`) and client id */
  name: string
  /** the config file's own section for this bridge (`gerrit:`, `imap:`, `ansible:`) */
  section: string
  schema: S
  /** Makes the source from the validated section: reads what it names, fails with ConfigErrors. */
  createSource: (section: z.output<S>, context: BridgeContext) => Promise<Source>
}

export interface Bridge {
  readonly name: string
  /** the whole config file's schema (common keys and the bridge's section) */
  readonly configSchema: z.ZodType
  /** Runs the bridge until SIGTERM or SIGINT; resolves with the exit code (0, 1, or 2 for bad configuration). */
  run: (configFile: string) => Promise<ExitCode>
}

/**
 * A bridge as a definition: its name, its config section and schema, and how to make its
 * source. Everything else — config loading and validation, the logger, the outbox, the MQTT
 * publisher, the status topic, the metrics server, signals and exit codes — is the kit's.
 */
export function defineBridge<S extends z.ZodType> (definition: BridgeDefinition<S>): Bridge {
  const configSchema = bridgeFileSchema(definition.section, definition.schema)
  return {
    name: definition.name,
    configSchema,
    run: async configFile => {
      try {
        const { common, bridge: section, baseDir } = await loadBridgeConfig<z.output<S>>(configFile, definition.name, definition.section, configSchema)
        const path = (p: string): string => resolve(baseDir, p)
        const context: BridgeContext = {
          common,
          backoff: { initialMs: common.backoff.initial * 1000, maxMs: common.backoff.max * 1000 },
          path,
          readFile: async (key, p) => await readConfiguredFile(path(p), key, common.source),
          secret: async (key, name, inline, file) => {
            if ((inline === undefined) === (file === undefined)) throw new ConfigError([`${key}: give ${name} or ${name}File (one of them)`], common.source)
            return inline ?? await readSecret(path(file!), `${key}.${name}File`, common.source)
          }
        }
        const source = await definition.createSource(section, context)
        const logger = createLogger(common.log.level, `firehose-bridge-${common.name}`)
        const running = await startBridge(common, source, logger)
        return await runUntilSignalled({ stop: async () => await running.stop() }, logger)
      } catch (err) {
        process.stderr.write(`firehose bridge ${definition.name}: ${(err as Error).message}\n`)
        return exitCodeFor(err)
      }
    }
  }
}
