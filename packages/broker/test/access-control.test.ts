import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { AccessControl } from '../src/auth/access-control.js'
import { hashPassword } from '../src/auth/mosquitto-password.js'
import { VerifiedCredentials } from '../src/auth/verified-credentials.js'

// Passwords verified lately are remembered (PBKDF2 once a minute, not on every HTTP request),
// and never past a reloaded password file, a wrong password, or the minute.

t.test('a verified password is remembered for a minute, for its hash only; a wrong one never', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'firehose-access-'))
  const passwordFile = join(dir, 'passwd')
  await writeFile(passwordFile, `alice:${await hashPassword('old-secret')}\n`)
  const clock = { now: 1_000_000 }
  const access = new AccessControl({ passwordFile }, () => clock.now)
  t.same(await access.load(), [])
  t.equal(await access.authenticate('alice', Buffer.from('old-secret')), 'ok')
  t.equal(await access.authenticate('alice', Buffer.from('old-secret')), 'ok', 'again, remembered')
  t.equal(await access.authenticate('alice', Buffer.from('guess')), 'bad-password', 'another password is checked, and refused')
  t.equal(await access.authenticate('alice', Buffer.from('old-secret')), 'ok', 'the right one still passes after a wrong one')
  await writeFile(passwordFile, `alice:${await hashPassword('new-secret')}\n`)
  t.same(await access.load(), [])
  t.equal(await access.authenticate('alice', Buffer.from('old-secret')), 'bad-password', 'a reloaded file applies at once: the old password is refused')
  t.equal(await access.authenticate('alice', Buffer.from('new-secret')), 'ok')
  await writeFile(passwordFile, '')
  t.same(await access.load(), [])
  t.equal(await access.authenticate('alice', Buffer.from('new-secret')), 'unknown-user', 'a user taken out is gone at once')
})

t.test('what is remembered: the password against one hash, for a minute', async t => {
  const clock = { now: 0 }
  const verified = new VerifiedCredentials(() => clock.now)
  const secret = Buffer.from('s3cret')
  t.notOk(verified.matches('alice', '$7$h1', secret), 'nothing before it is verified')
  verified.remember('alice', '$7$h1', secret)
  t.ok(verified.matches('alice', '$7$h1', secret))
  t.notOk(verified.matches('alice', '$7$h1', Buffer.from('s3cres')), 'another password')
  t.notOk(verified.matches('alice', '$7$h2', secret), 'another hash (the file was reloaded)')
  t.notOk(verified.matches('bob', '$7$h1', secret), 'another user')
  clock.now += 59_999
  t.ok(verified.matches('alice', '$7$h1', secret))
  clock.now += 1
  t.notOk(verified.matches('alice', '$7$h1', secret), 'a minute on: verified again')
})
