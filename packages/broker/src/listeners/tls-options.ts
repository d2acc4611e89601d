import { readFile } from 'node:fs/promises'
import type { SecureContextOptions } from 'node:tls'
import type { TlsFiles } from '../config/types.js'
import { cannotRead, ConfigError } from '@firehose/runtime'

/** Reads the certificate files; every unreadable one is named by its key. TLS 1.2 and later only. */
export async function readTlsOptions (files: TlsFiles, key: string, source: string): Promise<SecureContextOptions> {
  const fields = Object.entries(files).filter((e): e is [string, string] => e[1] !== undefined)
  const results = await Promise.allSettled(fields.map(async ([, path]) => await readFile(path)))
  const problems: string[] = []
  const contents: Record<string, Buffer> = {}
  results.forEach((result, i) => {
    const [field, path] = fields[i]!
    if (result.status === 'fulfilled') contents[field] = result.value
    else problems.push(cannotRead(`${key}.tls.${field}`, path, result.reason))
  })
  if (problems.length > 0) throw new ConfigError(problems, source)
  return { cert: contents.cert, key: contents.key, ...(contents.ca === undefined ? {} : { ca: contents.ca }), minVersion: 'TLSv1.2' }
}
