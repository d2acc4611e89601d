import { readFile } from 'node:fs/promises'
import type { SecureContextOptions } from 'node:tls'
import type { TlsFiles } from '../config/types.js'
import { ConfigError } from '../errors.js'

/** Reads the certificate files; the error names the listener key and the file. */
export async function readTlsOptions (files: TlsFiles, key: string, source: string): Promise<SecureContextOptions> {
  const read = async (path: string, field: string): Promise<Buffer> => {
    try {
      return await readFile(path)
    } catch (err) {
      throw new ConfigError([`${key}.tls.${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], source)
    }
  }
  const [cert, privateKey, ca] = await Promise.all([
    read(files.cert, 'cert'),
    read(files.key, 'key'),
    files.ca === undefined ? undefined : read(files.ca, 'ca')
  ])
  return { cert, key: privateKey, ...(ca === undefined ? {} : { ca }), minVersion: 'TLSv1.2' }
}
