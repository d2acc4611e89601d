import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto'
import t from 'tap'
import { checkHostKey, parseKnownHosts } from '../src/known-hosts.js'

const key = (): Buffer => Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }))
const good = key()
const other = key()

t.test('plain and hashed entries, ports written as OpenSSH writes them', async t => {
  const salt = randomBytes(20)
  const hash = createHmac('sha1', salt).update('[review.example.org]:29418').digest()
  const entries = parseKnownHosts([
    '# comment',
    `[gerrit.example.org]:29418,[10.0.0.1]:29418 ssh-ed25519 ${good.toString('base64')}`,
    `|1|${salt.toString('base64')}|${hash.toString('base64')} ssh-ed25519 ${good.toString('base64')}`,
    `plain.example.org ssh-ed25519 ${good.toString('base64')}`
  ].join('\n'))
  t.equal(checkHostKey(entries, 'gerrit.example.org', 29418, good), null)
  t.equal(checkHostKey(entries, '10.0.0.1', 29418, good), null)
  t.equal(checkHostKey(entries, 'review.example.org', 29418, good), null, 'hashed entry')
  t.equal(checkHostKey(entries, 'plain.example.org', 22, good), null, 'port 22 is written bare')
  t.match(checkHostKey(entries, 'gerrit.example.org', 29418, other), /HOST KEY MISMATCH for \[gerrit\.example\.org\]:29418: server offered SHA256:/)
  t.match(checkHostKey(entries, 'unknown.example.org', 29418, good), /no key for \[unknown\.example\.org\]:29418 in known_hosts/)
  t.match(checkHostKey(entries, 'plain.example.org', 29418, good), /no key for/, 'another port is another host')
})
