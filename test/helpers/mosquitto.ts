import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { waitFor } from './wait.js'

/**
 * Debian's mosquitto_sub, the tool most firehose users read with. Lines are collected as
 * they arrive (`-v` gives "topic payload").
 */
export class MosquittoSub {
  readonly lines: string[] = []
  readonly stderr: string[] = []
  exitCode: number | null = null
  private readonly child: ChildProcess

  constructor (args: string[]) {
    this.child = spawn('mosquitto_sub', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    createInterface({ input: this.child.stdout! }).on('line', l => this.lines.push(l))
    createInterface({ input: this.child.stderr! }).on('line', l => this.stderr.push(l))
    this.child.on('exit', code => { this.exitCode = code ?? -1 })
    this.child.on('error', err => { this.stderr.push(String(err)); this.exitCode = -1 })
  }

  async waitForLines (n: number, ms = 10000): Promise<string[]> {
    await waitFor(`${n} lines from mosquitto_sub (have ${this.lines.length}: ${this.lines.slice(-3).join(' | ')}; stderr: ${this.stderr.join(' ')})`, () => this.lines.length >= n, ms)
    return this.lines
  }

  async waitForLine (predicate: (line: string) => boolean, ms = 10000): Promise<string> {
    return await waitFor(`a matching line from mosquitto_sub (have: ${this.lines.slice(-5).join(' | ')}; stderr: ${this.stderr.join(' ')})`, () => this.lines.find(predicate), ms)
  }

  async exited (ms = 10000): Promise<number> {
    return await waitFor('mosquitto_sub to exit', () => this.exitCode ?? undefined, ms)
  }

  stop (): void {
    if (this.exitCode === null) this.child.kill('SIGTERM')
  }
}

/** Runs mosquitto_pub (or any short command) and returns its exit code and output. */
export async function run (command: string, args: string[], input?: string): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', d => { stdout += String(d) })
    child.stderr.on('data', d => { stderr += String(d) })
    child.on('error', reject)
    child.on('close', code => resolve({ code: code ?? -1, stdout, stderr }))
    child.stdin.on('error', () => {}) // EPIPE when the command exits before reading its input
    child.stdin.end(input ?? '')
  })
}
