import { ID_PREFIX, type Catalogue } from './catalogue-loader.js'
import { ENVELOPE_SCHEMAS, TOPIC_SCHEMAS } from './catalogue.js'

type Schema = Record<string, unknown>

const typeOf = (s: Schema | undefined): string => {
  if (s === undefined) return 'any'
  if (typeof s.$ref === 'string') return `[${s.$ref.replace(ID_PREFIX, '').replace(/^#\/\$defs\//, '')}]`
  if ('const' in s) return `\`${JSON.stringify(s.const)}\``
  if (Array.isArray(s.enum)) return s.enum.map(v => `\`${JSON.stringify(v)}\``).join(' \\| ')
  const type = Array.isArray(s.type) ? s.type.join(' \\| ') : typeof s.type === 'string' ? s.type : 'any'
  if (type === 'array' && s.items !== undefined) return `array of ${typeOf(s.items as Schema)}`
  return type
}
const cell = (text: unknown): string => typeof text === 'string' ? text.replace(/\|/g, '\\|').replace(/\n/g, ' ') : ''

/** A table of a schema's own properties: name, type, whether required, what it is. */
function propertyTable (schema: Schema): string[] {
  const properties = schema.properties as Record<string, Schema> | undefined
  if (properties === undefined || Object.keys(properties).length === 0) return []
  const required = new Set(schema.required as string[] | undefined)
  return [
    '| field | type | | |',
    '|---|---|---|---|',
    ...Object.entries(properties).map(([name, p]) => `| \`${name}\` | ${typeOf(p)} | ${required.has(name) ? 'always' : ''} | ${cell(p.description)} |`),
    ''
  ]
}

/** The event types a dispatching schema (allOf of if/then on `type`) sends to schemas of their own. */
function dispatched (schema: Schema): Array<[string, string]> {
  const branches = (schema.allOf as Schema[] | undefined) ?? []
  return branches.flatMap(branch => {
    const type = ((branch.if as Schema | undefined)?.properties as Record<string, Schema> | undefined)?.type?.const
    const ref = (branch.then as Schema | undefined)?.$ref
    return typeof type === 'string' && typeof ref === 'string' ? [[type, ref.replace(ID_PREFIX, '')] as [string, string]] : []
  })
}

/**
 * docs/topics.md, from the catalogue: every topic family with its filter, its schema's
 * description and fields; then the HTTP APIs' envelopes. A test fails when the checked-in file
 * is not what this renders (regenerate with `npm run docs:topics`).
 */
export function renderTopicsDoc (catalogue: Catalogue): string {
  const out: string[] = [
    '# Topics and their schemas',
    '',
    '<!-- Generated from packages/schemas/schemas/ by `npm run docs:topics`: edit the schemas, not this file. -->',
    '',
    'Every topic family Firehose publishes has a JSON Schema (draft 2020-12), served by the broker',
    'on its WebSocket ports: `GET /v1/schemas` lists them by MQTT filter, `GET /v1/schemas/<id>` is',
    'one schema, and `POST /v1/schemas/validate?topic=<topic>` with a payload as the body answers',
    '`{ "valid": true }`, `{ "valid": false, "errors": [...] }` or `{ "valid": null }` (no schema for',
    'the topic). The bridges\' tests check what they publish against them.',
    '[Back to the README](../README.md)',
    ''
  ]
  const byId = new Map<string, string[]>()
  for (const { filter, id } of TOPIC_SCHEMAS) byId.set(id, [...(byId.get(id) ?? []), filter])
  out.push('| topics | schema |', '|---|---|')
  for (const [id, filters] of byId) out.push(`| ${filters.map(f => `\`${f}\``).join(', ')} | [${id}](#${anchor(catalogue, id)}) |`)
  out.push('')
  const section = (id: string, filters: string[] | undefined): void => {
    const schema = catalogue.schemas.get(id)!
    out.push(`## ${String(schema.title)}`, '')
    out.push(`${filters === undefined ? '' : `Topics: ${filters.map(f => `\`${f}\``).join(', ')}. `}Schema: [\`/v1/schemas/${id}\`](../packages/schemas/schemas/${id}.json).`, '')
    if (typeof schema.description === 'string') out.push(schema.description, '')
    const types = dispatched(schema)
    if (types.length > 0) {
      out.push('By `type`, each with a schema of its own (any other type: an object with a string `type`):', '', '| type | schema |', '|---|---|')
      for (const [type, ref] of types) out.push(`| \`${type}\` | [\`${ref}\`](../packages/schemas/schemas/${ref}.json) |`)
      out.push('')
    }
    out.push(...propertyTable(schema))
  }
  for (const [id, filters] of byId) section(id, filters)
  out.push('## HTTP envelopes', '', 'Not topics: the bodies of the history and subscription APIs.', '')
  for (const id of ENVELOPE_SCHEMAS) section(id, undefined)
  return out.join('\n').replace(/\n+$/, '\n')
}

function anchor (catalogue: Catalogue, id: string): string {
  return String(catalogue.schemas.get(id)?.title ?? id).toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')
}
