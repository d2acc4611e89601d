import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { FIREHOSE_BIN } from './repo.js'
import { waitFor } from './wait.js'

/** A JSON log line. Tests key on `event`, the stable name of what happened; `msg` is for people and may be reworded. */
export type LogLine = Record<string, unknown> & { msg?: string, event?: string, level?: number }

/** A `firehose ...` child process whose JSON log lines are collected as they come. */
export class FirehoseProcess {
  child: ChildProcess | undefined
  readonly logs: LogLine[] = []
  readonly stderr: string[] = []
  exitCode: number | null = null

  /** Starts `firehose ARGS` and waits for the log line whose event is `ready`. */
  protected async spawnUntil (args: string[], ready: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
    const since = this.logs.length
    this.exitCode = null
    const child = spawn(process.execPath, [FIREHOSE_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
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
    await waitFor(`firehose ${args[0]} to log the event ${ready}`, () => {
      if (this.exitCode !== null) throw new Error(`firehose ${args.join(' ')} exited with ${this.exitCode}: ${this.stderr.join('\n')} ${JSON.stringify(this.logs.slice(since))}`)
      return this.logs.slice(since).some(l => l.event === ready)
    }, 20000)
  }

  /** Sends a signal and, for SIGTERM, SIGINT and SIGKILL, waits for the exit. */
  async signal (signal: NodeJS.Signals): Promise<void> {
    if (this.child === undefined || this.exitCode !== null) return
    this.child.kill(signal)
    if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGKILL') {
      await waitFor(`the process to exit on ${signal}`, () => this.exitCode !== null, 30000)
    }
  }

  async waitForLog (what: string, predicate: (line: LogLine) => boolean, ms = 10000): Promise<LogLine> {
    return await waitFor(what, () => this.logs.find(predicate), ms)
  }

  /** Lines logged with this event (`gerrit.streaming`). */
  count (event: string): number {
    return this.logs.filter(l => l.event === event).length
  }

  /** Whether a line with this event (and these fields) was logged. */
  logged (event: string, fields: Record<string, unknown> = {}): boolean {
    return this.logs.some(l => l.event === event && Object.entries(fields).every(([k, v]) => l[k] === v))
  }
}
