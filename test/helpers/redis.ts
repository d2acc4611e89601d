import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { portIsOpen } from './ports.js'
import { waitFor } from './wait.js'

/**
 * Debian's redis-server on a loopback port, with its own directory and an append-only file
 * synced on every write, as a cluster's Redis should be run: a restart keeps its data.
 */
export class RedisServer {
  private child: ChildProcess | undefined
  readonly logs: string[] = []

  private constructor (readonly port: number, readonly dir: string) {}

  get url (): string { return `redis://127.0.0.1:${this.port}` }

  static async start (port: number): Promise<RedisServer> {
    if (!existsSync('/usr/bin/redis-server')) throw new Error('/usr/bin/redis-server is missing: install the Debian package redis-server (npm test does this when run as root)')
    const redis = new RedisServer(port, await mkdtemp(join(tmpdir(), 'firehose-redis-')))
    await redis.restart()
    return redis
  }

  async restart (): Promise<void> {
    const child = spawn('/usr/bin/redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    const collect = (d: Buffer): void => { this.logs.push(...d.toString().split('\n').filter(l => l !== '')) }
    child.stdout!.on('data', collect)
    child.stderr!.on('data', collect)
    await waitFor(`redis-server on port ${this.port}`, async () => {
      if (child.exitCode !== null) throw new Error(`redis-server exited: ${this.logs.join('\n')}`)
      return this.logs.some(l => l.includes('Ready to accept connections'))
    })
  }

  /** SIGKILL: Redis crashes; what it acknowledged is in its append-only file. */
  async kill (): Promise<void> {
    const child = this.child
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGKILL')
    await waitFor('redis-server to exit', () => child.exitCode !== null || child.signalCode !== null)
    await waitFor('the Redis port to close', async () => !(await portIsOpen(this.port)))
  }

  async destroy (): Promise<void> {
    await this.kill()
    await rm(this.dir, { recursive: true, force: true })
  }
}
