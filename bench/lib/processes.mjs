// Starts the brokers a benchmark compares, on free loopback ports, and stops them.
import { spawn, spawnSync } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createInterface } from 'node:readline'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const FIREHOSE_BIN = join(ROOT, 'packages/cli/bin/firehose.js')

const given = new Set()
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** A free loopback port, not handed out before by this process (the kernel may offer one again). */
export async function freePort () {
  for (;;) {
    const port = await new Promise(resolve => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address()
        server.close(() => resolve(port))
      })
    })
    if (given.has(port)) continue
    given.add(port)
    return port
  }
}

async function waitForPort (port, child) {
  const { connect } = await import('node:net')
  const deadline = Date.now() + 20000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before listening on ${port}`)
    const open = await new Promise(resolve => {
      const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true) })
      s.on('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > deadline) throw new Error(`nothing listening on ${port}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function waitForLine (child, stream, predicate, what) {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 20000)
    createInterface({ input: stream }).on('line', line => { if (predicate(line)) { clearTimeout(timer); resolve() } })
    child.on('exit', code => { clearTimeout(timer); reject(new Error(`${what}: exited with ${code}`)) })
  })
}

/** The benches' `--journal on|off` (default on: the issue's figures are with the journal on); exits on anything else. */
export function journalOption (value) {
  if (value === 'on' || value === 'off') return value === 'on'
  console.error(`--journal: expected on or off, got ${JSON.stringify(value)}`)
  process.exit(2)
}

/**
 * `firehose broker` with an MQTT and a WebSocket listener; `extra` is merged into its config.
 * `journal`: keep a journal of every publish (topics `#`) in the broker's directory, as a broker
 * with persistence does by default.
 */
export async function startFirehose ({ users, extra = {}, journal = false }) {
  const dir = await mkdtemp(join(tmpdir(), 'firehose-bench-'))
  const port = await freePort()
  const passwd = join(dir, 'passwd')
  const { hashPassword } = await import(join(ROOT, 'packages/broker/dist/index.js'))
  await writeFile(passwd, (await Promise.all(Object.entries(users).map(async ([u, p]) => `${u}:${await hashPassword(p)}\n`))).join(''))
  const wsPort = await freePort()
  const config = {
    listeners: [{ port, host: '127.0.0.1', protocol: 'mqtt' }, { port: wsPort, host: '127.0.0.1', protocol: 'websockets' }],
    passwordFile: passwd,
    persistence: false,
    admin: false,
    sysInterval: 0,
    log: { level: 'warn' },
    limits: { maxConnections: 100000, maxConnectionsPerIp: 100000 },
    ...(journal ? { journal: { dir: join(dir, 'journal'), topics: ['#'] } } : {}),
    ...extra
  }
  if (extra.persistence === undefined && 'cluster' in extra) delete config.persistence
  const file = join(dir, 'firehose.json')
  await writeFile(file, JSON.stringify(config)) // JSON is YAML
  // BENCH_BROKER_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", to profile the broker
  const nodeArgs = (process.env.BENCH_BROKER_NODE_ARGS ?? '').split(' ').filter(Boolean)
  const child = spawn(process.execPath, [...nodeArgs, FIREHOSE_BIN, 'broker', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, FIREHOSE_LOG_LEVEL: 'info' } })
  await waitForLine(child, child.stdout, l => l.includes('"event":"broker.started"'), 'firehose broker')
  // BENCH_BROKER_STDOUT=FILE keeps what the broker prints (with BENCH_BROKER_NODE_ARGS=--trace-gc, its collections)
  if (process.env.BENCH_BROKER_STDOUT) child.stdout.pipe(createWriteStream(process.env.BENCH_BROKER_STDOUT, { flags: 'a' }))
  else child.stdout.resume()
  return { port, wsPort, pid: child.pid, stop: () => stop(child) }
}

export async function startRedis () {
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'firehose-bench-redis-'))
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await waitForLine(child, child.stdout, l => l.includes('Ready to accept connections'), 'redis-server')
  child.stdout.resume()
  return { url: `redis://127.0.0.1:${port}`, pid: child.pid, stop: () => stop(child) }
}

async function stop (child) {
  if (child.exitCode !== null) return
  child.kill('SIGTERM')
  await new Promise(resolve => child.once('exit', resolve))
}

/** Debian's Mosquitto with an MQTT and a WebSocket listener, anonymous access; `persistence`: sessions and queued messages saved in its directory (off by default), at most `maxQueuedMessages` per offline session (0: no limit). */
export async function startMosquitto ({ persistence = false, maxQueuedMessages = 0 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'firehose-bench-mosquitto-'))
  const port = await freePort()
  const wsPort = await freePort()
  const file = join(dir, 'mosquitto.conf')
  await writeFile(file, [
    'per_listener_settings false', 'allow_anonymous true', persistence ? `persistence true\npersistence_location ${dir}/\nmax_queued_messages ${maxQueuedMessages}` : 'persistence false', 'log_dest stdout', 'log_type error', 'log_type warning',
    `listener ${port} 127.0.0.1`, `listener ${wsPort} 127.0.0.1`, 'protocol websockets', 'max_connections -1', ''
  ].join('\n'))
  const child = spawn('mosquitto', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.resume()
  child.stderr.resume()
  for (const p of [port, wsPort]) await waitForPort(p, child)
  return { port, wsPort, pid: child.pid, stop: () => stop(child) }
}

/** Resident memory of a process, in bytes (Linux). */
export async function rssBytes (pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

/**
 * Resident memory once the process has been idle a while: the least of four samples a second
 * apart after 6 s (V8 collects and gives memory back after some idle time; a single sample right
 * after the connections came counted garbage not yet collected, and varied from 4 to 10 KiB per
 * connection between runs).
 */
export async function settledRss (pid) {
  await sleep(6000)
  const samples = []
  for (let i = 0; i < 4; i++) {
    samples.push(await rssBytes(pid))
    await sleep(1000)
  }
  return Math.min(...samples)
}

/** CPU seconds a process's threads have run so far, to the nanosecond (/proc/PID/task/TID/schedstat; processCpuSeconds counts clock ticks, too coarse for a few hundred messages). */
export async function threadCpuSeconds (pid) {
  let ns = 0
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    ns += Number((await readFile(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').catch(() => '0')).split(' ')[0])
  }
  return ns / 1e9
}

/** The machine a bench runs on, for its header line: cores and their model, Node, and with `mosquitto`, Mosquitto's version. */
export function machineSummary ({ mosquitto = false } = {}) {
  const parts = [`${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'})`, `Node ${process.version}`]
  // `mosquitto -h` prints its version and exits non-zero
  if (mosquitto) parts.push(spawnSync('mosquitto', ['-h']).stdout.toString().split('\n')[0])
  return parts.join(', ')
}

/** CPU seconds (user + system) a process has used so far (Linux). */
export async function processCpuSeconds (pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (USER_HZ = 100)
}
