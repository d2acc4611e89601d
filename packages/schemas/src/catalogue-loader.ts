import { readdir, readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'
import { topicMatches } from '@firehose/runtime'
import { ENVELOPE_SCHEMAS, TOPIC_SCHEMAS } from './catalogue.js'

/** Where the schema files are: `schemas/<id>.json` beside this package's `dist/`. */
export const SCHEMA_DIR = fileURLToPath(new URL('../schemas/', import.meta.url))
/** Every schema's `$id` is this followed by its id. */
export const ID_PREFIX = 'urn:firehose:schema:'

/** A payload checked against its topic's schema. */
export type Verdict = { valid: true } | { valid: false, errors: string[] } | { valid: undefined }

/**
 * The schema catalogue, loaded from its files once: each schema by id, the index of topic
 * filters, and a validator per schema (ajv, JSON Schema 2020-12, all errors), compiled when it
 * is first used — compiling them all took a quarter of the broker's start. (The package's tests
 * compile every one: `compileAll`.)
 */
export class Catalogue {
  private readonly validators = new Map<string, ValidateFunction>()

  private constructor (readonly schemas: ReadonlyMap<string, Record<string, unknown>>, private readonly ajv: Ajv2020) {}

  static async load (dir = SCHEMA_DIR): Promise<Catalogue> {
    const schemas = new Map<string, Record<string, unknown>>()
    for (const file of (await readdir(dir)).filter(f => f.endsWith('.json')).sort()) {
      const schema = JSON.parse(await readFile(`${dir}/${file}`, 'utf8')) as Record<string, unknown>
      const id = file.slice(0, -'.json'.length)
      if (schema.$id !== ID_PREFIX + id) throw new Error(`schemas/${file}: $id is ${JSON.stringify(schema.$id)}, not "${ID_PREFIX}${id}"`)
      schemas.set(id, schema)
    }
    for (const id of [...TOPIC_SCHEMAS.map(t => t.id), ...ENVELOPE_SCHEMAS]) {
      if (!schemas.has(id)) throw new Error(`the catalogue names schema "${id}", and schemas/${id}.json is missing`)
    }
    const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true })
    for (const schema of schemas.values()) ajv.addSchema(schema)
    return new Catalogue(schemas, ajv)
  }

  /** Compiles every validator now (a schema ajv refuses throws). */
  compileAll (): void {
    for (const id of this.schemas.keys()) this.validator(id)
  }

  private validator (id: string): ValidateFunction | undefined {
    let validator = this.validators.get(id)
    if (validator === undefined && this.schemas.has(id)) {
      validator = this.ajv.getSchema(ID_PREFIX + id)!
      this.validators.set(id, validator)
    }
    return validator
  }

  /** `{ "<MQTT filter>": "/v1/schemas/<id>" }`, as GET /v1/schemas answers. */
  index (): Record<string, string> {
    return Object.fromEntries(TOPIC_SCHEMAS.map(({ filter, id }) => [filter, `/v1/schemas/${id}`]))
  }

  /** The id of the schema for a topic, if the catalogue has one. */
  idFor (topic: string): string | undefined {
    return TOPIC_SCHEMAS.find(({ filter }) => topicMatches(filter, topic))?.id
  }

  /**
   * Checks a payload against its topic's schema: JSON is parsed; a payload that is not JSON is
   * checked as a string (as `$SYS` values are text). `valid: undefined` when no schema covers the topic.
   */
  validate (topic: string, payload: Buffer | string): Verdict {
    const id = this.idFor(topic)
    return id === undefined ? { valid: undefined } : this.validateAgainst(id, payload)
  }

  validateAgainst (id: string, payload: Buffer | string | unknown): Verdict {
    const validator = this.validator(id)
    if (validator === undefined) throw new Error(`no schema "${id}"`)
    const value = typeof payload === 'string' || Buffer.isBuffer(payload) ? parsed(payload.toString()) : payload
    if (validator(value)) return { valid: true }
    return { valid: false, errors: (validator.errors ?? []).map(e => `${e.instancePath === '' ? '(payload)' : e.instancePath} ${e.message ?? 'is invalid'}${e.params !== undefined && Object.keys(e.params).length > 0 ? ` ${JSON.stringify(e.params)}` : ''}`) }
  }
}

function parsed (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}
