import { spawn } from 'node:child_process'
import { mkdtemp, readFile, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import t from 'tap'
import { makeCerts } from './helpers/certs.js'
import { MosquittoSub, run } from './helpers/mosquitto.js'
import { freePort } from './helpers/ports.js'
import { FIREHOSE_BIN } from './helpers/repo.js'
import { waitFor } from './helpers/wait.js'

// The `firehose` command as an operator meets it.

const firehose = (args: string[], input?: string) => run(process.execPath, [FIREHOSE_BIN, ...args], input)
const dir = await mkdtemp(join(tmpdir(), 'firehose-cli-'))

t.test('--help and --version', async t => {
  const main = await firehose(['--help'])
  t.equal(main.code, 0)
  t.match(main.stdout, /broker \[--config FILE\]/)
  t.match(main.stdout, /passwd FILE USER/)
  for (const bridge of ['gerrit', 'launchpad', 'ansible']) t.match(main.stdout, `bridge ${bridge} --config FILE`)
  const broker = await firehose(['broker', '--help'])
  t.equal(broker.code, 0)
  for (const v of ['FIREHOSE_MQTT_PORT', 'FIREHOSE_MQTTS_PORT', 'FIREHOSE_WS_PORT', 'FIREHOSE_WSS_PORT', 'FIREHOSE_ADMIN_PORT']) t.match(broker.stdout, v)
  t.match((await firehose(['--version'])).stdout, /^firehose \d+\.\d+\.\d+\n$/)
  const unknown = await firehose(['nonsense'])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /unknown command "nonsense"/)
})

t.test('an invalid config names the key and the problem, and the broker refuses to start (exit 2)', async t => {
  const cases: Array<[string, RegExp]> = [
    ['listeners:\n  - port: 70000\n    protocol: mqtt\n', /listeners\[0\]\.port: .*65535/],
    ['listeners:\n  - port: 1\n    protocol: smtp\n', /listeners\[0\]\.protocol: /],
    ['sysInterval: often\n', /sysInterval: .*number/],
    ['limits:\n  maxPacketSize: -1\n', /limits\.maxPacketSize: /],
    ['limits:\n  maxConections: 5\n', /limits: unknown key "maxConections"/],
    ['admin:\n  port: [1]\n', /admin\.port: /],
    ['listeners: [\n', /YAML: /],
    ['log:\n  level: loud\n', /log\.level: /]
  ]
  for (const [yaml, expected] of cases) {
    const file = join(dir, 'bad.yaml')
    await writeFile(file, yaml)
    const r = await firehose(['broker', '--config', file])
    t.equal(r.code, 2, yaml)
    t.match(r.stderr, expected, yaml)
  }
  const missing = await firehose(['broker', '--config', join(dir, 'none.yaml')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /cannot read the config file/)
  const envBad = await run('env', ['FIREHOSE_MQTT_PORT=eighty', process.execPath, FIREHOSE_BIN, 'broker', '--check'])
  t.equal(envBad.code, 2)
  t.match(envBad.stderr, /FIREHOSE_MQTT_PORT: "eighty" is not a port/)
})

t.test('a missing certificate or a broken ACL file names the key', async t => {
  const file = join(dir, 'tls.yaml')
  await writeFile(file, `listeners:\n  - port: ${await freePort()}\n    host: 127.0.0.1\n    protocol: mqtt\n    tls: { cert: nope.crt, key: nope.key }\npersistence: false\nadmin: false\n`)
  const r = await firehose(['broker', '--config', file])
  t.equal(r.code, 2)
  t.match(r.stderr, /listeners\[0\]\.tls\.cert: cannot read .*nope\.crt/)
  const checked = await firehose(['broker', '--config', file, '--check'])
  t.equal(checked.code, 2, '--check reads the certificates too')
  t.match(checked.stderr, /listeners\[0\]\.tls\.key: cannot read .*nope\.key/)
  await writeFile(join(dir, 'acl'), 'topic read #\nuser\ntopic sideways x\n')
  await writeFile(join(dir, 'acl.yaml'), 'aclFile: acl\n')
  const check = await firehose(['broker', '--config', join(dir, 'acl.yaml'), '--check'])
  t.equal(check.code, 2)
  t.match(check.stderr, /aclFile .*acl line 2: /)
})

t.test('a bridge with an invalid config names the key and exits 2', async t => {
  const file = join(dir, 'bridge.yaml')
  await writeFile(file, 'mqtt:\n  urls: [http://x]\noutbox: { dir: o }\ngerrit:\n  host: h\n  port: 0\n  username: u\n  privateKey: k\n  knownHosts: kh\n  surprise: 1\n')
  const r = await firehose(['bridge', 'gerrit', '--config', file])
  t.equal(r.code, 2)
  t.match(r.stderr, /mqtt\.urls\[0\]: expected mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\//)
  t.match(r.stderr, /gerrit\.port: /)
  t.match(r.stderr, /gerrit: unknown key "surprise"/)
  await writeFile(file, 'mqtt:\n  urls: [mqtt://127.0.0.1:1]\noutbox: { dir: o }\ngerrit:\n  host: h\n  username: u\n  privateKey: missing.key\n  knownHosts: kh\n')
  const missing = await firehose(['bridge', 'gerrit', '--config', file])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /gerrit\.privateKey: cannot read .*missing\.key: ENOENT/)
  t.equal((await firehose(['bridge', 'gerrit'])).code, 2, '--config is required')
  const pluginPath = await firehose(['bridge', 'ansible', 'plugin-path'])
  t.equal(pluginPath.code, 0)
  t.ok((await stat(join(pluginPath.stdout.trim(), 'firehose.py'))).isFile(), 'plugin-path names the directory holding the callback plugin')
  await writeFile(file, 'mqtt:\n  urls: [mqtt://127.0.0.1:1]\noutbox: { dir: o }\nansible:\n  token: short\n')
  const shortToken = await firehose(['bridge', 'ansible', '--config', file])
  t.equal(shortToken.code, 2)
  t.match(shortToken.stderr, /ansible\.token: at least 16 characters/)
  await writeFile(file, 'mqtt:\n  urls: [mqtt://127.0.0.1:1]\noutbox: { dir: o }\nimap:\n  host: h\n  username: u\n  security: ssl\n  processed: { action: archive }\n')
  const imap = await firehose(['bridge', 'launchpad', '--config', file])
  t.equal(imap.code, 2)
  t.match(imap.stderr, /imap\.security: /)
  t.match(imap.stderr, /imap\.processed\.action: /)
  await writeFile(file, 'mqtt:\n  urls: [mqtt://127.0.0.1:1]\noutbox: { dir: o }\nimap:\n  host: h\n  username: u\n')
  const noPassword = await firehose(['bridge', 'launchpad', '--config', file])
  t.equal(noPassword.code, 2)
  t.match(noPassword.stderr, /imap: give password or passwordFile/)
  t.equal((await firehose(['bridge', 'nonsense', '--config', file])).code, 2)
})

t.test('a cluster node whose Redis cannot be reached: exit 1 (systemd retries), password not logged', async t => {
  const file = join(dir, 'cluster.yaml')
  await writeFile(file, `listeners: [{ port: 0, host: 127.0.0.1, protocol: mqtt }]\nadmin: false\ncluster: { redis: "redis://user:sekrit@127.0.0.1:${await freePort()}/0" }\n`)
  const r = await firehose(['broker', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout, /cluster\.redis: cannot connect to redis:\/\/user:\*\*\*@127\.0\.0\.1/)
  t.notMatch(r.stdout + r.stderr, /sekrit/, 'the password is not logged')
})

t.test('a port in use: a clear error and exit 1', async t => {
  const port = await freePort()
  const blocker = createServer().listen(port, '127.0.0.1')
  t.teardown(() => blocker.close())
  const file = join(dir, 'busy.yaml')
  await writeFile(file, `listeners:\n  - { port: ${port}, host: 127.0.0.1, protocol: mqtt }\npersistence: false\nadmin: false\n`)
  const r = await firehose(['broker', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout, /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/)
})

t.test('a data directory locked by another broker: a clear error and exit 1 (it may pass: systemd retries)', async t => {
  const data = join(dir, 'locked-data')
  const { ClassicLevel } = await import('classic-level')
  const holder = new ClassicLevel(data)
  await holder.open()
  t.teardown(() => holder.close())
  const file = join(dir, 'locked.yaml')
  await writeFile(file, `listeners:\n  - { port: ${await freePort()}, host: 127.0.0.1, protocol: mqtt }\npersistence: { dir: ${data} }\nadmin: false\n`)
  const r = await firehose(['broker', '--config', file])
  t.equal(r.code, 1)
  t.match(r.stdout, /persistence\.dir: cannot open .*locked-data.*is another broker using this directory\?/)
})

t.test('with no config file: the four default listeners, moved by environment variables', async t => {
  const certs = makeCerts(join(dir, 'default-certs'))
  const ports = { mqtt: await freePort(), mqtts: await freePort(), ws: await freePort(), wss: await freePort(), admin: await freePort() }
  const child = spawn(process.execPath, [FIREHOSE_BIN, 'broker'], {
    cwd: dir,
    env: {
      ...process.env,
      FIREHOSE_MQTT_PORT: String(ports.mqtt),
      FIREHOSE_MQTTS_PORT: String(ports.mqtts),
      FIREHOSE_WS_PORT: String(ports.ws),
      FIREHOSE_WSS_PORT: String(ports.wss),
      FIREHOSE_ADMIN_PORT: String(ports.admin),
      FIREHOSE_TLS_CERT: certs.cert,
      FIREHOSE_TLS_KEY: certs.key,
      FIREHOSE_DATA_DIR: join(dir, 'default-data')
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', d => { out += String(d) })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  await waitFor('the default broker', () => out.includes('firehose broker started'), 20000)
  for (const p of [ports.mqtt, ports.mqtts, ports.ws, ports.wss]) t.match(out, `:${p}`)
  const tcp = new MosquittoSub(['-h', '127.0.0.1', '-p', String(ports.mqtt), '-t', '$SYS/broker/version', '-v', '-C', '1', '-W', '10'])
  const tls = new MosquittoSub(['-h', 'localhost', '-p', String(ports.mqtts), '--cafile', certs.ca, '-t', '$SYS/broker/version', '-v', '-C', '1', '-W', '10'])
  t.match((await tcp.waitForLines(1))[0], /firehose version/)
  t.match((await tls.waitForLines(1))[0], /firehose version/)
  const health = await fetch(`http://127.0.0.1:${ports.admin}/healthz`)
  t.equal(health.status, 200)
  t.ok((await stat(join(dir, 'default-data'))).isDirectory(), 'persistence in FIREHOSE_DATA_DIR')
  child.kill('SIGTERM')
  t.equal(await exited, 0, 'SIGTERM: a clean exit')
})

t.test('FIREHOSE_WS_PORT=off disables a listener', async t => {
  const r = await run('env', ['FIREHOSE_WS_PORT=off', 'FIREHOSE_WSS_PORT=off', 'FIREHOSE_MQTTS_PORT=off', `FIREHOSE_MQTT_PORT=${await freePort()}`, 'FIREHOSE_ADMIN_PORT=off', process.execPath, FIREHOSE_BIN, 'broker', '--check'])
  t.equal(r.code, 0, r.stderr)
})

t.test('firehose passwd writes Mosquitto $7$ lines, updates, deletes, keeps the file private', async t => {
  const file = join(dir, 'passwd')
  t.equal((await firehose(['passwd', '--password-stdin', file, 'gerrit'], 'one\n')).code, 0)
  t.equal((await firehose(['passwd', '--password-stdin', file, 'launchpad'], 'two\n')).code, 0)
  const first = await readFile(file, 'utf8')
  t.match(first, /^gerrit:\$7\$101\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\nlaunchpad:\$7\$/)
  t.equal((await stat(file)).mode & 0o777, 0o600)
  const updated = await firehose(['passwd', '--password-stdin', file, 'gerrit'], 'three\n')
  t.match(updated.stdout, /updated "gerrit"/)
  const second = await readFile(file, 'utf8')
  t.not(second.split('\n')[0], first.split('\n')[0], 'the hash changed')
  t.equal(second.split('\n')[1], first.split('\n')[1], 'the other user is untouched')
  t.equal((await firehose(['passwd', '--delete', file, 'gerrit'])).code, 0)
  t.notMatch(await readFile(file, 'utf8'), /gerrit:/)
  t.equal((await firehose(['passwd', file, 'x:y'], 'p\n')).code, 2, 'a user name with a colon is refused')
  t.equal((await firehose(['passwd', file])).code, 2, 'usage error')
  const noTty = await firehose(['passwd', file, 'someone'])
  t.equal(noTty.code, 1)
  t.match(noTty.stderr, /--password-stdin/)
})
