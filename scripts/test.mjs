// `npm test`: installs the Debian packages the tests talk to when they are missing, builds,
// type-checks the tests, lints, checks each package's dependency list, and runs every test
// (unit and contract tests in packages/*/test, end-to-end tests in test/).
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ensureDebianPackages } from './debian-deps.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const started = Date.now()
ensureDebianPackages([
  ['mosquitto_sub', 'mosquitto-clients'],
  ['mosquitto_pub', 'mosquitto-clients'],
  ['mosquitto_passwd', 'mosquitto'],
  ['openssl', 'openssl'],
  ['/usr/sbin/sshd', 'openssh-server'],
  ['ssh-keygen', 'openssh-client'],
  ['ssh', 'openssh-client'],
  ['ansible-playbook', 'ansible-core'],
  ['/usr/sbin/dovecot', 'dovecot-imapd'],
  ['/usr/bin/redis-server', 'redis-server'],
  // examples/push_receiver.py, run by Debian's python3 with Debian's modules
  ['/usr/bin/python3', 'python3'],
  ['/usr/lib/python3/dist-packages/jwt/__init__.py', 'python3-jwt'],
  ['/usr/lib/python3/dist-packages/cryptography/__init__.py', 'python3-cryptography'],
  // the viewer's tests drive Debian's browser (playwright-core, no browser download)
  ['/usr/bin/chromium', 'chromium']
])
if (!existsSync(`${root}node_modules/.bin/tap`)) execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' })
execFileSync(`${root}node_modules/.bin/tsc`, ['-b'], { cwd: root, stdio: 'inherit' })
// the tests are type-checked too (tap runs them without checking)
execFileSync(`${root}node_modules/.bin/tsc`, ['-p', 'tsconfig.test.json'], { cwd: root, stdio: 'inherit' })
execFileSync(`${root}node_modules/.bin/eslint`, ['.'], { cwd: root, stdio: 'inherit' })
execFileSync(process.execPath, [`${root}scripts/check-dependencies.mjs`], { cwd: root, stdio: 'inherit' })
const args = process.argv.slice(2)
const files = args.length > 0 ? args : ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts']
// tap's TypeScript loader (ts-node) would otherwise pick the nearest package tsconfig, whose
// verbatimModuleSyntax makes it emit CommonJS for ES modules
const env = { ...process.env, TS_NODE_PROJECT: `${root}tsconfig.test.json` }
const tap = spawn(`${root}node_modules/.bin/tap`, [...files], { cwd: root, stdio: ['inherit', 'pipe', 'inherit'], env })
let summary
tap.stdout.on('data', chunk => {
  process.stdout.write(chunk)
  const m = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?(?:, skip: (\d+))?/.exec(String(chunk))
  if (m) summary = { pass: Number(m[2]), fail: Number(m[3] ?? 0), skip: Number(m[4] ?? 0) }
})
tap.on('close', code => {
  // the plain closing line CI reads, whatever the runner
  const seconds = Math.round((Date.now() - started) / 1000)
  const duration = `${Math.floor(seconds / 60)} min ${seconds % 60} s`
  if (summary) console.log(`${summary.pass} passed, ${summary.fail} failed${summary.skip ? `, ${summary.skip} skipped` : ''} in ${duration}`)
  else console.log(`tests ended in ${duration} without a summary`)
  process.exitCode = code ?? 1
})
