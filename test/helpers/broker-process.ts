import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashPassword } from '@firehose/broker'
import { stringify } from 'yaml'
import { makeCerts } from './certs.js'
import { freePort } from './ports.js'
import { FirehoseProcess } from './firehose-process.js'

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

/**
 * The real broker, as operators run it: `firehose broker --config FILE` in a child process,
 * on free loopback ports, with its own certificates, data directory and user files.
 */
export class BrokerProcess extends FirehoseProcess {
  private constructor (
    readonly dir: string,
    readonly ports: Ports,
    readonly certs: { ca: string, cert: string, key: string },
    readonly configFile: string,
    private readonly env: NodeJS.ProcessEnv
  ) {
    super()
  }

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
    await this.spawnUntil(['broker', '--config', this.configFile], 'broker.started', this.env)
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
