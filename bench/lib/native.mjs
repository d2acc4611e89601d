// Runs bench/lib/subscribers.c (built here with the system's C compiler, into bench/.build):
// many subscribers in one lean process, so the generator is not what limits a fan-out figure.
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const BUILD = fileURLToPath(new URL('../.build/', import.meta.url))

/** bench/lib/<name>.c built into bench/.build/<name> unless the binary is newer; its path. */
function build (name = 'subscribers') {
  const source = fileURLToPath(new URL(`${name}.c`, import.meta.url))
  const binary = `${BUILD}${name}`
  const fresh = (() => { try { return statSync(binary).mtimeMs >= statSync(source).mtimeMs } catch { return false } })()
  if (fresh) return binary
  mkdirSync(BUILD, { recursive: true })
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', binary, source], { stdio: 'inherit' })
  if (cc.error || cc.status !== 0) throw new Error(`could not build bench/lib/${name}.c: install a C compiler (apt-get install gcc)`)
  return binary
}

/** A copy loop (`command args... PORT`) on `port`, once it has printed its first line (listening). */
async function startCopyLoop (name, command, args, port) {
  const child = spawn(command, [...args, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve)
    child.once('exit', code => reject(new Error(`${name} exited with ${code}`)))
  })
  return { port, pid: child.pid, stop: async () => { child.kill(); await new Promise(resolve => child.once('exit', resolve)) } }
}

/** bench/lib/idealcast.c on `port`: the floor for a batching fan-out (copies each read's PUBLISH packets to every subscriber). */
export async function startIdealcast (port) {
  return await startCopyLoop('idealcast', build('idealcast'), [], port)
}

/** bench/lib/nodecast.mjs on `port`: idealcast's copy loop in Node (one write per subscriber per read). */
export async function startNodecast (port) {
  return await startCopyLoop('nodecast', process.execPath, [fileURLToPath(new URL('nodecast.mjs', import.meta.url))], port)
}

/**
 * `count` subscribers on `filter` over `transport` ('tcp' or 'ws'), resolved once all have their
 * SUBACK. `bytes()` is the delivered bytes so far, reported by the process every `sweepMs`
 * (default 2), which is also how long it lets deliveries pile up between two sweeps of its
 * sockets; `reported(ms)` resolves at the next report (or after `ms`).
 * With `stamps` ({ packetSize, offset }: every PUBLISH has that size and a CLOCK_MONOTONIC
 * nanosecond stamp at that offset, as process.hrtime.bigint() gives) every delivery is timed,
 * and `close()` resolves to { p50, p99, samples, disconnected } (latencies in ms); `mark()`
 * resolves to the same for the deliveries since the last mark and starts anew.
 */
export async function openNativeSubscribers ({ host = '127.0.0.1', port, count, filter, idPrefix, transport = 'tcp', stamps, sweepMs = 2 }) {
  const args = [host, String(port), String(count), filter, idPrefix, transport]
  if (stamps !== undefined) args.push(String(stamps.packetSize), String(stamps.offset))
  const env = { ...process.env, SUBSCRIBERS_SWEEP_US: String(Math.round(sweepMs * 1000)) }
  const child = spawn(build(), args, { stdio: ['pipe', 'pipe', 'inherit'], env })
  let total = 0
  /** who waits for the next report (flood's closed loop wakes on it instead of polling) */
  let waiting = []
  let latency
  let marked
  let exited = false
  child.on('exit', () => { exited = true })
  await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout })
    lines.on('line', line => {
      if (line === 'ready') resolve()
      else if (line.startsWith('latency ')) {
        const [p50, p99, samples, disconnected] = line.split(' ').slice(1).map(Number)
        latency = { p50, p99, samples, disconnected }
        marked?.(latency)
        marked = undefined
      } else {
        total = Number(line)
        const woken = waiting
        waiting = []
        for (const wake of woken) wake()
      }
    })
    child.on('exit', code => reject(new Error(`subscribers exited with ${code} before all were subscribed`)))
  })
  return {
    count,
    pid: child.pid,
    bytes: () => total,
    /** resolves at the next report of delivered bytes, or after `ms` */
    reported: async ms => await new Promise(resolve => {
      const timer = setTimeout(resolve, ms)
      waiting.push(() => { clearTimeout(timer); resolve() })
    }),
    mark: async () => await new Promise(resolve => {
      marked = resolve
      child.stdin.write('mark\n')
    }),
    close: async () => {
      if (!exited) {
        child.stdin.end()
        await new Promise(resolve => child.once('exit', resolve))
      }
      return latency
    }
  }
}
