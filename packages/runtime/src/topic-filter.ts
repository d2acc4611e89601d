/** MQTT topic filter arithmetic, level by level. */

const startsWithWildcard = (levels: string[]): boolean => levels[0] === '+' || levels[0] === '#'
const isSystem = (level: string | undefined): boolean => level !== undefined && level.startsWith('$')

export function isValidFilter (filter: string): boolean {
  if (filter === '') return false
  const levels = filter.split('/')
  return levels.every((level, i) =>
    level === '+' || (level === '#' && i === levels.length - 1) || (!level.includes('+') && !level.includes('#')))
}

/** Does `topic` match `filter`? A filter starting with a wildcard never matches a `$` topic [MQTT-4.7.2-1]. */
export function topicMatches (filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  if (startsWithWildcard(f) && isSystem(t[0])) return false
  for (let i = 0; ; i++) {
    const fl = f[i]
    const tl = t[i]
    if (fl === '#') return true // also "a/#" for "a" [MQTT-4.7.1-2]
    if (fl === undefined || tl === undefined) return fl === undefined && tl === undefined
    if (fl !== '+' && fl !== tl) return false
  }
}

/** Does every topic that matches `inner` also match `outer`? */
export function filterCovers (outer: string, inner: string): boolean {
  const o = outer.split('/')
  const n = inner.split('/')
  if (startsWithWildcard(o) && isSystem(n[0])) return false
  for (let i = 0; ; i++) {
    const ol = o[i]
    const nl = n[i]
    if (ol === '#') return true
    if (ol === undefined || nl === undefined) return ol === undefined && nl === undefined
    if (nl === '#') return false
    if (nl === '+' ? ol !== '+' : ol !== '+' && ol !== nl) return false
  }
}

/** Could some topic match both filters? */
export function filtersIntersect (a: string, b: string): boolean {
  const x = a.split('/')
  const y = b.split('/')
  if ((startsWithWildcard(x) && isSystem(y[0])) || (startsWithWildcard(y) && isSystem(x[0]))) return false
  for (let i = 0; ; i++) {
    const xl = x[i]
    const yl = y[i]
    if (xl === '#' || yl === '#') return true
    if (xl === undefined || yl === undefined) return xl === undefined && yl === undefined
    if (xl !== '+' && yl !== '+' && xl !== yl) return false
  }
}
