import { readFile } from 'node:fs/promises'
import { parseDocument } from 'yaml'
import type { z } from 'zod'
import { ConfigError } from './errors.js'

/** Reads a YAML config file; an unreadable file is a ConfigError naming it. */
export async function readConfigText (path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    throw new ConfigError([`cannot read the config file: ${(err as Error).message}`], path)
  }
}

/** Parses YAML strictly (duplicate keys are errors); every syntax error is reported at once. */
export function parseYaml (text: string, source: string): unknown {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) throw new ConfigError(doc.errors.map(e => `YAML: ${e.message.split('\n')[0]}`), source)
  return doc.toJS() ?? {}
}

/** Validates against a schema; every problem is reported at once, each naming its key. */
export function validate<S extends z.ZodType> (schema: S, data: unknown, source: string): z.output<S> {
  const parsed = schema.safeParse(data)
  if (!parsed.success) throw new ConfigError(formatZodIssues(parsed.error.issues), source)
  return parsed.data
}

/** `listeners[1].tls.cert: expected string, received number` */
export function formatZodIssues (issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map(issue => {
    const path = issue.path.reduce<string>((acc, part) =>
      typeof part === 'number' ? `${acc}[${part}]` : acc === '' ? String(part) : `${acc}.${String(part)}`, '')
    const message = issue.code === 'unrecognized_keys'
      ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map(k => `"${k}"`).join(', ')}`
      : issue.message
    return `${path === '' ? '(top level)' : path}: ${message}`
  })
}

/** Freezes a validated configuration so nothing changes it after start. */
export function deepFreeze<T> (value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
