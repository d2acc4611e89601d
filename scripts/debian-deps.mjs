// Installs the Debian packages a script needs when they are missing. Root only (CI and
// developer machines run as root here); otherwise it says what to install and fails.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'

/** [command to look for (or an absolute path that must exist), Debian package] */
export function ensureDebianPackages (needs) {
  const missing = needs.filter(([command]) => command.startsWith('/') ? !existsSync(command) : spawnSync('sh', ['-c', `command -v ${command}`]).status !== 0)
  if (missing.length === 0) return
  const packages = [...new Set(missing.map(([, pkg]) => pkg))]
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.map(([c]) => c).join(', ')}: install the Debian packages ${packages.join(' ')} (sudo apt-get install ${packages.join(' ')})`)
  }
  console.log(`installing Debian packages: ${packages.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
  // policy-rc.d keeps the mosquitto package from starting its own broker on port 1883
  execFileSync('sh', ['-c', `printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && apt-get install -y -qq --no-install-recommends ${packages.join(' ')}; status=$?; rm -f /usr/sbin/policy-rc.d; exit $status`], { stdio: 'inherit', env })
}
