import { readFile } from 'node:fs/promises'
import { ConfigError } from './errors.js'

/** A file the configuration names, read whole; an unreadable one is a ConfigError naming its key. */
export async function readConfiguredFile (path: string, key: string, source: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    throw new ConfigError([cannotRead(key, path, err)], source)
  }
}

/** The first line of a secret file; the error names the key, never the content. */
export async function readSecret (path: string, key: string, source: string): Promise<string> {
  return (await readConfiguredFile(path, key, source)).toString('utf8').split('\n')[0]!.replace(/\r$/, '')
}

/** `tls.cert: cannot read /etc/firehose/server.crt: ENOENT` */
export function cannotRead (key: string, path: string, err: unknown): string {
  return `${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`
}
