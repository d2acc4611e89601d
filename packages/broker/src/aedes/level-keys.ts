/**
 * aedes-persistence-level 9.2's per-client keys (asyncPersistence.js): a prefix, the client id
 * URI-encoded, ':', then the rest. ':' is escaped inside an id, and ';' sorts right after it, so
 * `<prefix><id>;` ends a client's range.
 */

/** The keys of one client under `prefix` (`outgoing:`, `incoming:` ...). */
export function clientRange (prefix: string, clientId: string): { gte: string, lt: string } {
  const encoded = encodeURIComponent(clientId)
  return { gte: `${prefix}${encoded}:`, lt: `${prefix}${encoded};` }
}

/** The client id a key under `prefix` belongs to. */
export function clientIdOf (key: string, prefix: string): string {
  return decodeURIComponent(key.slice(prefix.length, key.indexOf(':', prefix.length)))
}

/** All keys under `prefix`: `outgoing:` up to `outgoing;`. */
export function prefixRange (prefix: string): { gte: string, lt: string } {
  return { gte: prefix, lt: `${prefix.slice(0, -1)};` }
}

export interface KeyLister {
  keys: (options: { gte: string, lt: string, limit?: number }) => { all: () => Promise<string[]> }
}

/** The client ids with keys under `prefix`, one seek per client. */
export async function clientIdsUnder (db: KeyLister, prefix: string): Promise<Set<string>> {
  const ids = new Set<string>()
  const { lt } = prefixRange(prefix)
  for (let from = prefix; ;) {
    const [key] = await db.keys({ gte: from, lt, limit: 1 }).all()
    if (key === undefined) return ids
    const id = clientIdOf(key, prefix)
    ids.add(id)
    from = clientRange(prefix, id).lt // past this client's keys
  }
}
