import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { REPO } from './repo.js'

/** A throwaway CA and server certificate, made by the same script operators use. */
export function makeCerts (dir: string): { ca: string, cert: string, key: string } {
  execFileSync('sh', [join(REPO, 'certs/make-dev-certs.sh'), '--force'], { env: { ...process.env, FIREHOSE_CERTS_DIR: dir }, stdio: 'pipe' })
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') }
}
