// MQTT topic filters as the broker applies them: which topics the tree, the panels and the
// schemas take.

/** Whether `topic` matches `filter`: `+` is one level, `#` the rest (the parent level too); a filter starting with a wildcard never matches a `$` topic. */
export function topicMatches (filter, topic) {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false
  }
  return f.length === t.length
}

/** Whether every topic `inner` matches, `outer` matches too (then one subscription is enough). */
export function filterCovers (outer, inner) {
  if (inner.startsWith('$') && (outer.startsWith('+') || outer.startsWith('#'))) return false
  const o = outer.split('/')
  const n = inner.split('/')
  for (let i = 0; i < o.length; i++) {
    if (o[i] === '#') return true
    if (i >= n.length || n[i] === '#') return false
    if (o[i] !== '+' && (n[i] === '+' || o[i] !== n[i])) return false
  }
  return o.length === n.length
}

/** Why `filter` is not an MQTT topic filter, or undefined when it is one. */
export function filterProblem (filter) {
  if (filter === '') return 'a filter is needed: # for everything'
  if (filter.includes('\u0000')) return 'a filter may not hold a NUL character'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '# stands alone, as the last level (gerrit/#)'
    if (level.includes('+') && level !== '+') return '+ stands alone, as a whole level (gerrit/+/change-merged)'
  }
  return undefined
}
