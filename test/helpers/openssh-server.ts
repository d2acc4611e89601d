import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { portIsOpen } from './ports.js'
import { waitFor } from './wait.js'

const STREAM_COMMAND = fileURLToPath(new URL('./gerrit-stream-command.mjs', import.meta.url))

export interface SshdOptions {
  dir: string
  port: number
  /** the event log the forced command follows */
  logFile: string
}

/**
 * Debian's OpenSSH server on a loopback port, standing in for Gerrit's SSH daemon: a
 * throwaway host key, one authorized client key, and a ForceCommand that streams the
 * events appended to a log file, as `gerrit stream-events` would.
 */
export class Sshd {
  private child: ChildProcess | undefined
  readonly logs: string[] = []

  private constructor (
    private readonly options: SshdOptions,
    readonly clientKeyPath: string,
    readonly knownHostsLine: string,
    readonly user: string
  ) {}

  get port (): number { return this.options.port }

  static async start (options: SshdOptions): Promise<Sshd> {
    if (!existsSync('/usr/sbin/sshd')) throw new Error('/usr/sbin/sshd is missing: install the Debian package openssh-server (npm test does this when run as root)')
    mkdirSync(options.dir, { recursive: true })
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }) // privilege separation directory
    const hostKey = join(options.dir, 'host_ed25519')
    const clientKey = join(options.dir, 'client_ed25519')
    for (const key of [hostKey, clientKey]) {
      if (!existsSync(key)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key])
    }
    await writeFile(join(options.dir, 'authorized_keys'), await readFile(clientKey + '.pub'))
    const [type, blob] = (await readFile(hostKey + '.pub', 'utf8')).trim().split(/\s+/)
    await writeFile(join(options.dir, 'sshd_config'), [
      `Port ${options.port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(options.dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(options.dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PubkeyAuthentication yes',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      `ForceCommand ${process.execPath} ${STREAM_COMMAND} ${options.logFile}`,
      'ClientAliveInterval 5',
      'LogLevel VERBOSE',
      ''
    ].join('\n'))
    const sshd = new Sshd(options, clientKey, `[127.0.0.1]:${options.port} ${type} ${blob}`, userInfo().username)
    await sshd.launch()
    return sshd
  }

  /** A known_hosts line for this port with some other, freshly made key. */
  static async otherHostKeyLine (dir: string, port: number): Promise<string> {
    mkdirSync(dir, { recursive: true })
    const key = join(dir, 'other_host_ed25519')
    if (!existsSync(key)) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key])
    const [type, blob] = (await readFile(key + '.pub', 'utf8')).trim().split(/\s+/)
    return `[127.0.0.1]:${port} ${type} ${blob}`
  }

  private async launch (): Promise<void> {
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(this.options.dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] })
    this.child = child
    child.stderr!.on('data', (d: Buffer) => this.logs.push(...d.toString().split('\n').filter(l => l !== '')))
    await waitFor(`sshd on port ${this.options.port} (${this.logs.join(' | ')})`, async () => {
      if (child.exitCode !== null) throw new Error(`sshd exited: ${this.logs.join('\n')}`)
      return await portIsOpen(this.options.port)
    })
  }

  /** SIGTERM to sshd and every session it started; waits until they are gone. */
  async stop (): Promise<void> {
    await this.signalAll('SIGTERM')
  }

  /** SIGKILL to sshd and every session at once: a crashed server. */
  async kill (): Promise<void> {
    await this.signalAll('SIGKILL')
  }

  async restart (): Promise<void> {
    await this.launch()
  }

  /** SIGSTOP to sshd and its sessions: connections stay open but nothing answers (a hung server). */
  freeze (): void {
    for (const pid of this.tree()) {
      try { process.kill(pid, 'SIGSTOP') } catch {}
    }
  }

  thaw (): void {
    for (const pid of this.tree()) {
      try { process.kill(pid, 'SIGCONT') } catch {}
    }
  }

  private tree (): number[] {
    const pid = this.child?.pid
    return pid === undefined ? [] : [pid, ...descendants(pid)]
  }

  /**
   * sshd's session processes call setsid(), so they leave its process group: they are found
   * by walking the process tree instead.
   */
  private async signalAll (signal: NodeJS.Signals): Promise<void> {
    const child = this.child
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
    const pids = [child.pid, ...descendants(child.pid)]
    for (const pid of pids) {
      try { process.kill(pid, signal) } catch {}
    }
    await waitFor('sshd and its sessions to exit', () => pids.every(pid => !alive(pid)), 10000)
  }
}

function descendants (root: number): number[] {
  const table = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
    .trim().split('\n').map(l => l.trim().split(/\s+/).map(Number) as [number, number])
  const found: number[] = []
  const walk = (pid: number): void => {
    for (const [child, parent] of table) {
      if (parent === pid) {
        found.push(child)
        walk(child)
      }
    }
  }
  walk(root)
  return found
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    const stat = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim()
    return stat !== '' && !stat.startsWith('Z')
  } catch {
    return false
  }
}
