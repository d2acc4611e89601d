import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { ImapFlow } from 'imapflow'
import { portIsOpen } from './ports.js'
import { waitFor } from './wait.js'

export interface DovecotOptions {
  port: number
  user: string
  password: string
  /** TLS: STARTTLS on `port`, and implicit TLS on `tlsPort` */
  tls?: { cert: string, key: string, tlsPort: number }
}

/**
 * Debian's Dovecot IMAP server on a loopback port, with a throwaway config, one user and a
 * Maildir under `dir`: where Launchpad's bug mail lands in a real deployment.
 */
export class Dovecot {
  private child: ChildProcess | undefined
  readonly logs: string[] = []

  private constructor (private readonly options: DovecotOptions, private readonly config: string, readonly dir: string) {}

  get port (): number { return this.options.port }
  get tlsPort (): number | undefined { return this.options.tls?.tlsPort }

  static async start (options: DovecotOptions): Promise<Dovecot> {
    if (!existsSync('/usr/sbin/dovecot')) throw new Error('/usr/sbin/dovecot is missing: install the Debian package dovecot-imapd (npm test does this when run as root)')
    // a directory of its own that Dovecot's unprivileged processes can enter (mkdtemp makes 0700)
    const dir = await mkdtemp(join(tmpdir(), 'firehose-dovecot-'))
    chmodSync(dir, 0o755)
    for (const sub of ['run', 'state', 'home']) mkdirSync(join(dir, sub), { recursive: true })
    const me = userInfo()
    // Dovecot refuses to store mail as root: when the tests run as root, the mail belongs to nobody
    const mail = me.uid === 0 ? { uid: 65534, gid: 65534 } : { uid: me.uid, gid: me.gid }
    chownSync(join(dir, 'home'), mail.uid, mail.gid)
    await writeFile(join(dir, 'users'), `${options.user}:{PLAIN}${options.password}\n`)
    const config = join(dir, 'dovecot.conf')
    await writeFile(config, [
      'protocols = imap',
      'listen = 127.0.0.1',
      `base_dir = ${join(dir, 'run')}`,
      `state_dir = ${join(dir, 'state')}`,
      'log_path = /dev/stderr',
      ...(options.tls === undefined ? ['ssl = no'] : ['ssl = yes', `ssl_cert = <${options.tls.cert}`, `ssl_key = <${options.tls.key}`]),
      'disable_plaintext_auth = no',
      'auth_mechanisms = plain login',
      `first_valid_uid = ${mail.uid}`,
      `first_valid_gid = ${mail.gid}`,
      'mail_location = maildir:~/Maildir',
      `passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u ${join(dir, 'users')}\n}`,
      `userdb {\n  driver = static\n  args = uid=${mail.uid} gid=${mail.gid} home=${join(dir, 'home')}/%u\n}`,
      `service imap-login {\n  inet_listener imap {\n    port = ${options.port}\n  }\n  inet_listener imaps {\n    port = ${options.tls?.tlsPort ?? 0}\n  }\n}`,
      // unprivileged, the whole server runs as the current user (Dovecot's own users do not exist for it)
      ...(me.uid === 0 ? [] : [`default_internal_user = ${me.username}`, `default_login_user = ${me.username}`, `service auth {\n  user = ${me.username}\n}`]),
      'service anvil {\n  chroot =\n}',
      'service imap-login {\n  chroot =\n}',
      'service stats {\n  unix_listener stats-reader {\n    mode = 0666\n  }\n  unix_listener stats-writer {\n    mode = 0666\n  }\n}',
      ''
    ].join('\n'))
    const dovecot = new Dovecot(options, config, dir)
    await dovecot.restart()
    return dovecot
  }

  /** Starts Dovecot (again) and waits until it accepts connections. */
  async restart (): Promise<void> {
    const child = spawn('/usr/sbin/dovecot', ['-F', '-c', this.config], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
    this.child = child
    child.stderr!.on('data', (d: Buffer) => this.logs.push(...d.toString().split('\n').filter(l => l !== '')))
    await waitFor(`dovecot on port ${this.options.port} (${this.logs.slice(-5).join(' | ')})`, async () => {
      if (child.exitCode !== null) throw new Error(`dovecot exited: ${this.logs.join('\n')}`)
      return await portIsOpen(this.options.port)
    })
  }

  /**
   * Runs `work` in an IMAP session as the test's user — the mail system delivering, or the
   * test looking at flags — over STARTTLS when `ca` is given.
   */
  async session<T> (work: (client: ImapFlow) => Promise<T>, ca?: Buffer): Promise<T> {
    const client = new ImapFlow({
      host: '127.0.0.1',
      port: this.options.port,
      secure: false,
      doSTARTTLS: ca !== undefined,
      ...(ca === undefined ? {} : { tls: { ca } }),
      auth: { user: this.options.user, pass: this.options.password },
      logger: false
    })
    await client.connect()
    try {
      return await work(client)
    } finally {
      await client.logout().catch(() => {})
    }
  }

  /** SIGKILL to Dovecot and all its processes (they share its process group): a crashed server. */
  async kill (): Promise<void> {
    await this.signalGroup('SIGKILL')
  }

  async stop (): Promise<void> {
    await this.signalGroup('SIGTERM')
  }

  /** Stops Dovecot and removes its directory. */
  async destroy (): Promise<void> {
    await this.stop()
    await rm(this.dir, { recursive: true, force: true })
  }

  private async signalGroup (signal: NodeJS.Signals): Promise<void> {
    const child = this.child
    if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
    try { process.kill(-child.pid, signal) } catch {}
    await waitFor('dovecot to exit', () => child.exitCode !== null || child.signalCode !== null, 10000)
    // its children (imap, imap-login) die with the group; give the port a moment
    await waitFor('dovecot\'s port to close', async () => !(await portIsOpen(this.options.port)), 10000)
  }
}
