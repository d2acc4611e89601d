/** Past this many compared lines (after their common start and end), no diff: the table would be too large. */
const MAX_CELLS = 1_000_000

/**
 * `before` and `after` line by line: `[{ kind, text }]` with kind ' ' (in both), '-' (only in
 * before) or '+' (only in after), by their longest common subsequence; undefined when too long.
 */
export function lineDiff (before, after) {
  const a = before.split('\n')
  const b = after.split('\n')
  let start = 0
  while (start < a.length && start < b.length && a[start] === b[start]) start++
  let endA = a.length
  let endB = b.length
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB-- }
  const x = a.slice(start, endA)
  const y = b.slice(start, endB)
  if (x.length * y.length > MAX_CELLS) return undefined
  const width = y.length + 1
  // common[i * width + j]: the longest common subsequence of x from i and y from j
  const common = new Uint32Array((x.length + 1) * width)
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      common[i * width + j] = x[i] === y[j] ? common[(i + 1) * width + j + 1] + 1 : Math.max(common[(i + 1) * width + j], common[i * width + j + 1])
    }
  }
  const lines = a.slice(0, start).map(text => ({ kind: ' ', text }))
  let i = 0
  let j = 0
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      lines.push({ kind: ' ', text: x[i++] }); j++
    } else if (i < x.length && (j === y.length || common[(i + 1) * width + j] >= common[i * width + j + 1])) {
      lines.push({ kind: '-', text: x[i++] })
    } else {
      lines.push({ kind: '+', text: y[j++] })
    }
  }
  for (const text of a.slice(endA)) lines.push({ kind: ' ', text })
  return lines
}
