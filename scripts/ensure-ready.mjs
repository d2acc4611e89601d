// `npm start` runs this first: on a fresh clone it installs the dependencies, builds, and
// makes the development certificates, so that one command gives a running broker.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { ensureDebianPackages } from './debian-deps.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: 'inherit' })

ensureDebianPackages([['openssl', 'openssl']])
if (!existsSync(`${root}node_modules/.bin/tsc`)) {
  console.log('firehose: installing dependencies (npm ci)')
  run('npm', ['ci', '--no-audit', '--no-fund'])
}
run(`${root}node_modules/.bin/tsc`, ['-b'])
if (!existsSync(`${root}certs/dev/server.crt`) && !process.env.FIREHOSE_TLS_CERT) {
  console.log('firehose: no TLS certificate yet: making a development CA and certificate in certs/dev/')
  run('sh', [`${root}certs/make-dev-certs.sh`])
}
if (process.getuid?.() !== 0 && !process.env.FIREHOSE_WS_PORT && spawnSync('sh', ['-c', 'command -v setcap']).status !== 0) {
  console.log('firehose: note: port 80 needs root or CAP_NET_BIND_SERVICE; set FIREHOSE_WS_PORT=8000 (say) to run unprivileged')
}
