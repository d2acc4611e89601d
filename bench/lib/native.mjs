// Runs bench/lib/subscribers.c (built here with the system's C compiler, into bench/.build):
// many subscribers in one lean process, so the generator is not what limits a fan-out figure.
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, statSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const SOURCE = fileURLToPath(new URL('subscribers.c', import.meta.url))
const BUILD = fileURLToPath(new URL('../.build/', import.meta.url))
const BINARY = `${BUILD}subscribers`

function build () {
  const fresh = (() => { try { return statSync(BINARY).mtimeMs >= statSync(SOURCE).mtimeMs } catch { return false } })()
  if (fresh) return
  mkdirSync(BUILD, { recursive: true })
  const cc = spawnSync('cc', ['-O2', '-Wall', '-o', BINARY, SOURCE], { stdio: 'inherit' })
  if (cc.error || cc.status !== 0) throw new Error('could not build bench/lib/subscribers.c: install a C compiler (apt-get install gcc)')
}

/**
 * `count` subscribers on `filter` over `transport` ('tcp' or 'ws'), resolved once all have their
 * SUBACK. `bytes()` is the delivered bytes so far (reported by the process every 2 ms).
 * With `stamps` ({ packetSize, offset }: every PUBLISH has that size and a CLOCK_MONOTONIC
 * nanosecond stamp at that offset, as process.hrtime.bigint() gives) every delivery is timed,
 * and `close()` resolves to { p50, p99, samples } in ms.
 */
export async function openNativeSubscribers ({ host = '127.0.0.1', port, count, filter, idPrefix, transport = 'tcp', stamps }) {
  build()
  const args = [host, String(port), String(count), filter, idPrefix, transport]
  if (stamps !== undefined) args.push(String(stamps.packetSize), String(stamps.offset))
  const child = spawn(BINARY, args, { stdio: ['pipe', 'pipe', 'inherit'] })
  let total = 0
  let latency
  let exited = false
  child.on('exit', () => { exited = true })
  await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout })
    lines.on('line', line => {
      if (line === 'ready') resolve()
      else if (line.startsWith('latency ')) {
        const [p50, p99, samples] = line.split(' ').slice(1).map(Number)
        latency = { p50, p99, samples }
      } else total = Number(line)
    })
    child.on('exit', code => reject(new Error(`subscribers exited with ${code} before all were subscribed`)))
  })
  return {
    count,
    pid: child.pid,
    bytes: () => total,
    close: async () => {
      if (!exited) {
        child.stdin.end()
        await new Promise(resolve => child.once('exit', resolve))
      }
      return latency
    }
  }
}
