import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { hashPassword, parsePasswordFile, removePasswordLine, upsertPasswordLine, verifyPassword } from '../src/auth/mosquitto-password.js'

// Compatibility with Mosquitto's own tools, not with our reading of its source.
for (const tool of ['mosquitto_passwd', 'mosquitto', 'mosquitto_pub']) {
  const found = spawnSync('sh', ['-c', `command -v ${tool} || test -x /usr/sbin/${tool}`]).status === 0
  if (!found) throw new Error(`${tool} is missing: install the Debian packages mosquitto and mosquitto-clients (npm test does this when run as root)`)
}
const dir = mkdtempSync(join(tmpdir(), 'firehose-passwd-'))

t.test('a file written by mosquitto_passwd ($7$) verifies', async t => {
  const file = join(dir, 'by-mosquitto')
  execFileSync('mosquitto_passwd', ['-c', '-b', file, 'gerrit', 's3cret: with spaces'])
  execFileSync('mosquitto_passwd', ['-b', file, 'launchpad', 'other'])
  const { users, problems } = parsePasswordFile(readFileSync(file, 'utf8'))
  t.same(problems, [])
  t.same([...users.keys()], ['gerrit', 'launchpad'])
  t.match(users.get('gerrit'), /^\$7\$101\$/)
  t.equal(await verifyPassword(users.get('gerrit')!, 's3cret: with spaces'), true)
  t.equal(await verifyPassword(users.get('gerrit')!, 's3cret'), false)
  t.equal(await verifyPassword(users.get('launchpad')!, Buffer.from('other')), true)
})

t.test('$6$ (salted SHA-512, older Mosquitto) verifies', async t => {
  const salt = Buffer.from('0123456789abcdef')
  const digest = createHash('sha512').update('pw').update(salt).digest()
  const hash = `$6$${salt.toString('base64')}$${digest.toString('base64')}`
  t.equal(await verifyPassword(hash, 'pw'), true)
  t.equal(await verifyPassword(hash, 'pW'), false)
})

t.test('our $7$ hash is accepted by the Mosquitto broker itself', async t => {
  const port = await new Promise<number>(resolve => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port
      s.close(() => resolve(p))
    })
  })
  writeFileSync(join(dir, 'ours'), `bridge:${await hashPassword('correct horse')}\n`)
  // `user root`: as root, Mosquitto would otherwise switch to the mosquitto user, who cannot read our temporary directory
  writeFileSync(join(dir, 'mosquitto.conf'), `listener ${port} 127.0.0.1\nallow_anonymous false\npassword_file ${join(dir, 'ours')}\n${process.getuid?.() === 0 ? 'user root\n' : ''}`)
  const mosquitto = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' })
  t.teardown(() => { mosquitto.kill() })
  const pub = (password: string) => spawnSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-u', 'bridge', '-P', password, '-t', 'x', '-m', 'y'])
  let ok = pub('correct horse')
  for (let i = 0; i < 50 && ok.status !== 0 && /refused|Connection/.test(String(ok.stderr)) && !/not authori[sz]ed|bad user/i.test(String(ok.stderr)); i++) {
    await new Promise(resolve => setTimeout(resolve, 100))
    ok = pub('correct horse')
  }
  t.equal(ok.status, 0, String(ok.stderr))
  const bad = pub('wrong horse')
  t.not(bad.status, 0)
  t.match(String(bad.stderr), /not authori[sz]ed|bad user name or password/i)
})

t.test('malformed lines are reported with their numbers, never their hashes, and skipped', async t => {
  const { users, problems } = parsePasswordFile([
    '# comment',
    '',
    'nocolon',
    ':$7$101$AAAA$BBBB',
    'plain:password',
    'iter:$7$0$AAAA$BBBB',
    'b64:$7$101$not base64!$BBBB',
    'ok:$6$AAAA$BBBB',
    'ok:$6$CCCC$DDDD'
  ].join('\n'))
  t.same([...users.keys()], ['ok'])
  t.same(problems.map(p => p.line), [3, 4, 5, 6, 7, 9])
  t.notOk(problems.some(p => p.message.includes('BBBB') || p.message.includes('password')), 'no secrets in messages')
  t.equal(await verifyPassword('garbage', 'x'), false, 'a malformed hash never verifies and never throws')
})

t.test('upsert and remove keep other lines and comments', async t => {
  const text = '# users\na:$6$AAAA$BBBB\nb:$6$CCCC$DDDD\n'
  t.equal(upsertPasswordLine(text, 'a', 'H'), '# users\na:H\nb:$6$CCCC$DDDD\n')
  t.equal(upsertPasswordLine(text, 'c', 'H'), text + 'c:H\n')
  t.equal(upsertPasswordLine('', 'c', 'H'), 'c:H\n')
  t.equal(removePasswordLine(text, 'a'), '# users\nb:$6$CCCC$DDDD\n')
  t.equal(removePasswordLine('a:H\n', 'a'), '')
})
