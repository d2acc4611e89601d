import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { hashPassword } from '@firehose/broker'
import { stringify } from 'yaml'
import { makeCerts } from './certs.js'
import { freePort } from './ports.js'
import { FIREHOSE_BIN } from './repo.js'
import { waitFor } from './wait.js'

export interface Ports { mqtt: number, mqtts: number, ws: number, wss: number, admin: number }

export interface BrokerOptions {
  /** user -> password, written to a Mosquitto-format password file */
  users?: Record<string, string>
  /** Mosquitto-format ACL file text */
  acl?: string
  /** merged over the generated configuration (listeners on free loopback ports) */
  config?: Record<string, unknown>
  env?: NodeJS.ProcessEnv
}

export type LogLine = Record<string, unknown> & { msg?: string, level?: number }

/**
 * The real broker, as operators run it: `firehose broker --config FILE` in a child process,
 * on free loopback ports, with its own certificates, data directory and user files.
 */
export class BrokerProcess {
  child: ChildProcess | undefined
  readonly logs: LogLine[] = []
  readonly stderr: string[] = []
  exitCode: number | null = null

  private constructor (
    readonly dir: string,
    readonly ports: Ports,
    readonly certs: { ca: string, cert: string, key: string },
    readonly configFile: string,
    private readonly env: NodeJS.ProcessEnv
  ) {}

  static async start (options: BrokerOptions = {}): Promise<BrokerProcess> {
    const dir = await mkdtemp(join(tmpdir(), 'firehose-test-'))
    const certs = makeCerts(join(dir, 'certs'))
    const ports: Ports = { mqtt: await freePort(), mqtts: await freePort(), ws: await freePort(), wss: await freePort(), admin: await freePort() }
    const host = '127.0.0.1'
    const tls = { cert: certs.cert, key: certs.key }
    const config: Record<string, unknown> = {
      listeners: [
        { port: ports.mqtt, host, protocol: 'mqtt' },
        { port: ports.mqtts, host, protocol: 'mqtt', tls },
        { port: ports.ws, host, protocol: 'websockets' },
        { port: ports.wss, host, protocol: 'websockets', tls }
      ],
      persistence: { dir: join(dir, 'data') },
      sysInterval: 1,
      admin: { host, port: ports.admin },
      log: { level: 'debug' },
      ...options.config
    }
    if (options.users !== undefined) {
      const lines = await Promise.all(Object.entries(options.users).map(async ([u, p]) => `${u}:${await hashPassword(p)}`))
      await writeFile(join(dir, 'passwd'), lines.join('\n') + '\n')
      config.passwordFile = join(dir, 'passwd')
    }
    if (options.acl !== undefined) {
      await writeFile(join(dir, 'acl'), options.acl)
      config.aclFile = join(dir, 'acl')
    }
    const configFile = join(dir, 'firehose.yaml')
    await writeFile(configFile, stringify(config))
    const broker = new BrokerProcess(dir, ports, certs, configFile, options.env ?? {})
    await broker.launch()
    return broker
  }

  /** Starts the process (again) and waits until it has said it is listening. */
  async launch (): Promise<void> {
    const since = this.logs.length
    this.exitCode = null
    const child = spawn(process.execPath, [FIREHOSE_BIN, 'broker', '--config', this.configFile], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    this.child = child
    createInterface({ input: child.stdout! }).on('line', line => {
      try {
        this.logs.push(JSON.parse(line) as LogLine)
      } catch {
        this.logs.push({ msg: line })
      }
    })
    createInterface({ input: child.stderr! }).on('line', line => this.stderr.push(line))
    child.on('exit', code => { this.exitCode = code ?? -1 })
    await waitFor('the broker to start', () => {
      if (this.exitCode !== null) throw new Error(`broker exited with ${this.exitCode}: ${this.stderr.join('\n')} ${JSON.stringify(this.logs.slice(since))}`)
      return this.logs.slice(since).some(l => l.msg === 'firehose broker started')
    }, 20000)
  }

  async waitForLog (what: string, predicate: (line: LogLine) => boolean, ms = 10000): Promise<LogLine> {
    return await waitFor(what, () => this.logs.find(predicate), ms)
  }

  /** Sends a signal and, for SIGTERM, SIGINT and SIGKILL, waits for the exit. */
  async signal (signal: NodeJS.Signals): Promise<void> {
    const child = this.child
    if (child === undefined || this.exitCode !== null) return
    child.kill(signal)
    if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGKILL') {
      await waitFor(`the broker to exit on ${signal}`, () => this.exitCode !== null, 20000)
    }
  }

  async restart (): Promise<void> {
    await this.signal('SIGTERM')
    await this.launch()
  }

  async stop (): Promise<void> {
    await this.signal('SIGTERM')
    await rm(this.dir, { recursive: true, force: true })
  }

  async metrics (): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.ports.admin}/metrics`)
    return await res.text()
  }

  /** One sample from /metrics, e.g. metric('firehose_publish_denied_total'). */
  async metric (name: string, labels = ''): Promise<number> {
    const text = await this.metrics()
    const line = text.split('\n').find(l => l.startsWith(`${name}${labels} `))
    if (line === undefined) throw new Error(`metric ${name}${labels} not found`)
    return Number(line.split(' ')[1])
  }
}
