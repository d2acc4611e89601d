// `npm test`: installs the Debian packages the tests talk to when they are missing,
// builds, and runs every test (unit tests in packages/*/test, end-to-end tests in test/).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ensureDebianPackages } from './debian-deps.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
ensureDebianPackages([
  ['mosquitto_sub', 'mosquitto-clients'],
  ['mosquitto_pub', 'mosquitto-clients'],
  ['mosquitto_passwd', 'mosquitto'],
  ['openssl', 'openssl']
])
if (!existsSync(`${root}node_modules/.bin/tap`)) execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' })
execFileSync(`${root}node_modules/.bin/tsc`, ['-b'], { cwd: root, stdio: 'inherit' })
// the tests are type-checked too (tap runs them without checking)
execFileSync(`${root}node_modules/.bin/tsc`, ['-p', 'tsconfig.test.json'], { cwd: root, stdio: 'inherit' })
const args = process.argv.slice(2)
const files = args.length > 0 ? args : ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts']
// tap's TypeScript loader (ts-node) would otherwise pick the nearest package tsconfig, whose
// verbatimModuleSyntax makes it emit CommonJS for ES modules
const env = { ...process.env, TS_NODE_PROJECT: `${root}tsconfig.test.json` }
const result = spawnSync(`${root}node_modules/.bin/tap`, [...files], { cwd: root, stdio: 'inherit', env })
process.exitCode = result.status ?? 1
