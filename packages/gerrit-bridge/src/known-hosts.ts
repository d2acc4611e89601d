import { createHash, createHmac, timingSafeEqual } from 'node:crypto'

export interface KnownHost { patterns: string[], keyType: string, key: Buffer, hashed?: { salt: Buffer, hash: Buffer } }

/** OpenSSH known_hosts: `host[,host] type base64` and hashed `|1|salt|hash type base64`; markers and comments skipped. */
export function parseKnownHosts (text: string): KnownHost[] {
  const hosts: KnownHost[] = []
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith('@')) continue
    const [hostField, keyType, keyB64] = line.split(/\s+/)
    if (hostField === undefined || keyType === undefined || keyB64 === undefined) continue
    const key = Buffer.from(keyB64, 'base64')
    if (hostField.startsWith('|1|')) {
      const [, , salt, hash] = hostField.split('|')
      if (salt !== undefined && hash !== undefined) hosts.push({ patterns: [], keyType, key, hashed: { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') } })
    } else {
      hosts.push({ patterns: hostField.split(','), keyType, key })
    }
  }
  return hosts
}

/** How OpenSSH names a host in known_hosts: `host` on port 22, `[host]:port` otherwise. */
export function hostName (host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`
}

function matches (entry: KnownHost, name: string): boolean {
  if (entry.hashed !== undefined) {
    const digest = createHmac('sha1', entry.hashed.salt).update(name).digest()
    return digest.length === entry.hashed.hash.length && timingSafeEqual(digest, entry.hashed.hash)
  }
  return entry.patterns.some(p => !p.startsWith('!') && p === name)
}

export function fingerprint (key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '')
}

/**
 * Strict host-key checking: the key the server presented must be one recorded for this host.
 * Returns null when it is, else the reason to refuse (the original bridge warned and went on).
 */
export function checkHostKey (entries: KnownHost[], host: string, port: number, key: Buffer): string | null {
  const name = hostName(host, port)
  const recorded = entries.filter(e => matches(e, name))
  if (recorded.some(e => e.key.equals(key))) return null
  if (recorded.length === 0) return `no key for ${name} in known_hosts (server offered ${fingerprint(key)}); add it with ssh-keyscan -p ${port} ${host}`
  return `HOST KEY MISMATCH for ${name}: server offered ${fingerprint(key)}, known_hosts has ${recorded.map(e => fingerprint(e.key)).join(', ')}; refusing to connect`
}
