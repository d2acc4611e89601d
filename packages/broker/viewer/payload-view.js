import { lineDiff } from './line-diff.js'

/** Payloads past this are shown as plain text, cut here: a page of DOM per message is enough. */
const MAX_RENDERED = 200_000
const MAX_HEX_BYTES = 4096
/** JSON levels open at first; deeper ones open on a click. */
const OPEN_LEVELS = 3
/** Unchanged lines around a change that a diff keeps. */
const CONTEXT = 3

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A payload as the viewer reads it: `{ kind: 'json', value, text }`, `{ kind: 'text', text }` or `{ kind: 'binary' }`. */
export function decode (raw) {
  let text
  try {
    text = utf8.decode(raw)
  } catch {
    return { kind: 'binary' }
  }
  if (/^\s*[[{]/.test(text)) {
    try {
      return { kind: 'json', value: JSON.parse(text), text }
    } catch {}
  }
  return { kind: 'text', text }
}

/** The payload as lines to compare: pretty JSON, text, or hex. */
export function comparable (raw) {
  const payload = decode(raw)
  if (payload.kind === 'json') return JSON.stringify(payload.value, null, 2)
  if (payload.kind === 'text') return payload.text
  return hexLines(raw, raw.length).join('\n')
}

const element = (tag, className, text) => {
  const node = document.createElement(tag)
  if (className !== undefined) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

/** The payload's DOM: JSON pretty-printed and collapsible (nested <details>), text, or a hex dump. */
export function payloadElement (raw) {
  const payload = decode(raw)
  if (payload.kind === 'binary') {
    const pre = element('pre', 'hex', hexLines(raw, MAX_HEX_BYTES).join('\n'))
    if (raw.length > MAX_HEX_BYTES) pre.append(`\n… ${(raw.length - MAX_HEX_BYTES).toLocaleString('en')} more bytes`)
    return pre
  }
  if (payload.kind === 'json' && payload.text.length <= MAX_RENDERED) {
    const root = element('div', 'json')
    root.append(jsonEntry(undefined, payload.value, true, 0))
    return root
  }
  const text = payload.kind === 'json' ? JSON.stringify(payload.value, null, 2) : payload.text
  const pre = element('pre', 'text', text.slice(0, MAX_RENDERED))
  if (text.length > MAX_RENDERED) pre.append(`\n… ${(text.length - MAX_RENDERED).toLocaleString('en')} more characters`)
  return pre
}

function jsonEntry (key, value, last, depth) {
  const label = key === undefined ? undefined : element('span', 'j-key', `${JSON.stringify(key)}: `)
  const comma = last ? '' : ','
  if (value === null || typeof value !== 'object') {
    const line = element('div', 'j-line')
    if (label !== undefined) line.append(label)
    line.append(element('span', `j-${value === null ? 'null' : typeof value}`, JSON.stringify(value)), comma)
    return line
  }
  const array = Array.isArray(value)
  const keys = array ? value.map((_, i) => i) : Object.keys(value)
  if (keys.length === 0) {
    const line = element('div', 'j-line')
    if (label !== undefined) line.append(label)
    line.append(array ? '[]' : '{}', comma)
    return line
  }
  const node = element('details', 'j-node')
  node.open = depth < OPEN_LEVELS
  const summary = element('summary')
  if (label !== undefined) summary.append(label)
  summary.append(array ? '[' : '{', element('span', 'j-hint', ` ${keys.length} ${array ? (keys.length === 1 ? 'item' : 'items') : (keys.length === 1 ? 'key' : 'keys')} ${array ? ']' : '}'}${comma}`))
  const children = element('div', 'j-children')
  keys.forEach((k, i) => children.append(jsonEntry(array ? undefined : k, value[k], i === keys.length - 1, depth + 1)))
  node.append(summary, children, element('div', 'j-close', `${array ? ']' : '}'}${comma}`))
  return node
}

function hexLines (raw, max) {
  const lines = []
  for (let at = 0; at < Math.min(raw.length, max); at += 16) {
    const bytes = [...raw.subarray(at, Math.min(at + 16, raw.length))]
    const hex = bytes.map(b => b.toString(16).padStart(2, '0')).join(' ')
    const ascii = bytes.map(b => b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.').join('')
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  ${ascii}`)
  }
  return lines
}

/** The changes from `before` to `after` (raw payloads): removed and added lines marked, long unchanged runs folded. */
export function diffElement (before, after) {
  const lines = lineDiff(comparable(before), comparable(after))
  if (lines === undefined) return element('p', 'note', 'Too large to compare.')
  if (lines.every(line => line.kind === ' ')) return element('p', 'note', 'Same payload as the previous message.')
  // one block per line: no line breaks in the text
  const pre = element('pre', 'diff')
  const near = lines.map((_, i) => lines.slice(Math.max(0, i - CONTEXT), i + CONTEXT + 1).some(l => l.kind !== ' '))
  let folded = 0
  const fold = () => {
    if (folded > 0) pre.append(element('span', 'd-fold', `⋯ ${folded} unchanged ${folded === 1 ? 'line' : 'lines'}`))
    folded = 0
  }
  lines.forEach((line, i) => {
    if (line.kind === ' ' && !near[i]) {
      folded++
      return
    }
    fold()
    const className = line.kind === '+' ? 'd-add' : line.kind === '-' ? 'd-del' : 'd-same'
    pre.append(element('span', className, `${line.kind} ${line.text}`))
  })
  fold()
  return pre
}
