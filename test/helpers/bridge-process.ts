import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { stringify } from 'yaml'
import type { LogLine } from './broker-process.js'
import { FIREHOSE_BIN } from './repo.js'
import { waitFor } from './wait.js'

/** A bridge as operators run it: `firehose bridge NAME --config FILE` in a child process. */
export class BridgeProcess {
  child: ChildProcess | undefined
  readonly logs: LogLine[] = []
  readonly stderr: string[] = []
  exitCode: number | null = null

  constructor (readonly name: string, readonly configFile: string) {}

  static async write (name: string, configFile: string, config: Record<string, unknown>): Promise<BridgeProcess> {
    await writeFile(configFile, stringify(config))
    return new BridgeProcess(name, configFile)
  }

  /** Starts the process and waits for "bridge started". */
  async start (): Promise<void> {
    const since = this.logs.length
    this.exitCode = null
    const child = spawn(process.execPath, [FIREHOSE_BIN, 'bridge', this.name, '--config', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] })
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
    await waitFor('the bridge to start', () => {
      if (this.exitCode !== null) throw new Error(`bridge exited with ${this.exitCode}: ${this.stderr.join('\n')}`)
      return this.logs.slice(since).some(l => l.msg === 'bridge started')
    }, 20000)
  }

  /** Sends a signal and, for SIGTERM, SIGINT and SIGKILL, waits for the exit. */
  async signal (signal: NodeJS.Signals): Promise<void> {
    if (this.child === undefined || this.exitCode !== null) return
    this.child.kill(signal)
    if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGKILL') {
      await waitFor(`the bridge to exit on ${signal}`, () => this.exitCode !== null, 30000)
    }
  }

  count (msg: string | RegExp): number {
    return this.logs.filter(l => typeof l.msg === 'string' && (typeof msg === 'string' ? l.msg === msg : msg.test(l.msg))).length
  }
}
