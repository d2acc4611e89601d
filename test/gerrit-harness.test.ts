import { appendFile, mkdtemp, writeFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { EventsLogStub } from './helpers/events-log-stub.js'
import { run } from './helpers/mosquitto.js'
import { Sshd } from './helpers/openssh-server.js'
import { freePort } from './helpers/ports.js'
import { waitFor } from './helpers/wait.js'

// The stand-in for a Gerrit server, checked with OpenSSH's own client: it must behave as
// `gerrit stream-events` does, or the bridge tests prove nothing.

const dir = await mkdtemp(join(tmpdir(), 'firehose-harness-'))
const logFile = join(dir, 'events.log')
await writeFile(logFile, JSON.stringify({ type: 'comment-added', eventCreatedOn: 100 }) + '\n')
const sshd = await Sshd.start({ dir: join(dir, 'sshd'), port: await freePort(), logFile })
t.teardown(() => sshd.stop())
const knownHosts = join(dir, 'known_hosts')
await writeFile(knownHosts, sshd.knownHostsLine + '\n')
const ssh = (command: string, hosts = knownHosts) => ['-p', String(sshd.port), '-i', sshd.clientKeyPath, '-o', `UserKnownHostsFile=${hosts}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', `${sshd.user}@127.0.0.1`, command]

t.test('streams only new events, filtered by -s, and lines that are not JSON', async t => {
  const child = spawn('ssh', ssh('gerrit stream-events -s comment-added'), { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', d => { out += String(d) })
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  await new Promise(resolve => setTimeout(resolve, 1500)) // the forced command is running
  await appendFile(logFile, [
    JSON.stringify({ type: 'comment-added', eventCreatedOn: 200 }),
    JSON.stringify({ type: 'patchset-created', eventCreatedOn: 201 }),
    'not json'
  ].map(l => l + '\n').join(''))
  await waitFor('two lines', () => out.split('\n').length >= 3)
  t.equal(out, '{"type":"comment-added","eventCreatedOn":200}\nnot json\n', 'the earlier event is not replayed; patchset-created is filtered out')
  await sshd.kill()
  t.not(await exited, 0, 'a killed server ends the client\'s session')
  await sshd.restart()
})

t.test('other commands are refused; a wrong host key is refused by OpenSSH too', async t => {
  const other = await run('ssh', ssh('gerrit ls-projects'))
  t.not(other.code, 0)
  t.match(other.stderr, /fatal: unknown command/)
  const wrong = join(dir, 'wrong_hosts')
  await writeFile(wrong, await Sshd.otherHostKeyLine(join(dir, 'other'), sshd.port) + '\n')
  const refused = await run('ssh', ssh('gerrit stream-events', wrong))
  t.not(refused.code, 0)
  t.match(refused.stderr, /Host key verification failed|HOST IDENTIFICATION HAS CHANGED/)
})

t.test('the events-log stub serves events since t1, with basic auth', async t => {
  const stub = await EventsLogStub.start({ logFile, port: await freePort(), username: 'u', password: 'p' })
  t.teardown(() => stub.close())
  const url = `http://127.0.0.1:${stub.port}/a/plugins/events-log/events/?t1=${encodeURIComponent('1970-01-01 00:03:20')}`
  const auth = { authorization: 'Basic ' + Buffer.from('u:p').toString('base64') }
  const res = await fetch(url, { headers: auth })
  t.equal(res.status, 200)
  t.equal(await res.text(), '{"type":"comment-added","eventCreatedOn":200}\n{"type":"patchset-created","eventCreatedOn":201}\n')
  t.equal((await fetch(url)).status, 401)
  stub.available = false
  t.equal((await fetch(url, { headers: auth })).status, 404)
})
