import { filterCovers, filtersIntersect, isValidFilter, topicMatches } from '@firehose/runtime'

export type Access = 'read' | 'write' | 'readwrite' | 'deny'
export interface AclRule { access: Access, filter: string }
export interface AclProblem { line: number, message: string }
export interface AclFile { anonymous: AclRule[], users: Map<string, AclRule[]>, patterns: AclRule[] }
export interface Identity { username: string | undefined, clientId: string }

const ACCESS = new Set<string>(['read', 'write', 'readwrite', 'deny'])

/**
 * Mosquitto's acl_file: `topic [access] FILTER`, `user NAME`, `pattern [access] FILTER`.
 * `topic` lines before the first `user` apply to anonymous clients only; `pattern` lines to
 * every client. A bad line is reported with its number and skipped.
 */
export function parseAclFile (text: string): { acl: AclFile, problems: AclProblem[] } {
  const acl: AclFile = { anonymous: [], users: new Map(), patterns: [] }
  const problems: AclProblem[] = []
  let current = acl.anonymous
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim()
    const n = index + 1
    if (line === '' || line.startsWith('#')) return
    const [keyword = '', ...rest] = line.split(/\s+/)
    const args = line.slice(keyword.length).trim()
    if (keyword === 'user') {
      if (args === '') {
        problems.push({ line: n, message: '"user" needs a user name' })
        current = [] // its topic lines belong to no one rather than to the previous user
        return
      }
      current = acl.users.get(args) ?? []
      acl.users.set(args, current)
      return
    }
    if (keyword !== 'topic' && keyword !== 'pattern') {
      problems.push({ line: n, message: `unknown keyword "${keyword}" (expected topic, pattern or user)` })
      return
    }
    if (rest.length === 1 && ACCESS.has(rest[0]!)) {
      problems.push({ line: n, message: `"${keyword} ${rest[0]}" needs a topic filter` })
      return
    }
    const hasAccess = rest.length > 1 && ACCESS.has(rest[0]!)
    const access = (hasAccess ? rest[0] : 'readwrite') as Access
    const filter = hasAccess ? args.slice(rest[0]!.length).trim() : args
    if (filter === '') {
      problems.push({ line: n, message: `"${keyword}" needs a topic filter` })
      return
    }
    const probe = keyword === 'pattern' ? filter.replaceAll('%u', 'u').replaceAll('%c', 'c') : filter
    if (!isValidFilter(probe)) {
      problems.push({ line: n, message: `invalid topic filter "${filter}" (# only as the last level, + and # alone in a level)` })
      return
    }
    ;(keyword === 'pattern' ? acl.patterns : current).push({ access, filter })
  })
  return { acl, problems }
}

/** Refuse substitutions that would smuggle wildcards or levels into a pattern. */
const UNSAFE = /[+#/]/

export class AclPolicy {
  constructor (private readonly acl: AclFile) {}

  rulesFor ({ username, clientId }: Identity): ClientRules {
    const own = username === undefined ? this.acl.anonymous : this.acl.users.get(username) ?? []
    const patterns: AclRule[] = []
    for (const rule of this.acl.patterns) {
      const usesUser = rule.filter.includes('%u')
      const usesClient = rule.filter.includes('%c')
      if (usesUser && (username === undefined || UNSAFE.test(username))) continue
      if (usesClient && UNSAFE.test(clientId)) continue
      patterns.push({ access: rule.access, filter: rule.filter.replaceAll('%u', username ?? '').replaceAll('%c', clientId) })
    }
    return new ClientRules([...own, ...patterns])
  }
}

/** The rules of one client, with patterns already substituted. */
export class ClientRules {
  private readonly read: string[]
  private readonly write: string[]
  private readonly deny: string[]
  readonly readsEverything: boolean

  constructor (rules: readonly AclRule[]) {
    this.read = rules.filter(r => r.access === 'read' || r.access === 'readwrite').map(r => r.filter)
    this.write = rules.filter(r => r.access === 'write' || r.access === 'readwrite').map(r => r.filter)
    this.deny = rules.filter(r => r.access === 'deny').map(r => r.filter)
    this.readsEverything = this.read.includes('#') && this.deny.length === 0
  }

  canPublish (topic: string): boolean {
    return this.write.some(f => topicMatches(f, topic)) && !this.deny.some(f => topicMatches(f, topic))
  }

  /** Granted when a read rule overlaps the filter and no deny rule covers all of it; messages are checked one by one. */
  canSubscribe (filter: string): boolean {
    return this.read.some(f => filtersIntersect(f, filter)) && !this.deny.some(f => filterCovers(f, filter))
  }

  canReceive (topic: string): boolean {
    return this.read.some(f => topicMatches(f, topic)) && !this.deny.some(f => topicMatches(f, topic))
  }
}
