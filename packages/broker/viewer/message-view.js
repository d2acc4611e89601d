import { diffElement, payloadElement } from './payload-view.js'
import { second } from './topic-tree.js'

const element = (tag, className, text) => {
  const node = document.createElement(tag)
  if (className !== undefined) node.className = className
  if (text !== undefined) node.textContent = text
  return node
}

const pad = (n, width = 2) => String(n).padStart(width, '0')
/** Local time to the millisecond, with the date when it is not today's. */
function formatTime (ms) {
  const at = new Date(ms)
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`
  return at.toDateString() === new Date().toDateString() ? time : `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${time}`
}

const plural = (n, one, many = `${one}s`) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`

/**
 * The selected topic: what it is, its schema, and its kept messages, newest first. Each
 * message is a <details> whose payload is rendered when first opened (the newest arrives open);
 * the list is brought up to date in place, and its messages checked against their schema.
 */
export class MessageView {
  #shown = new Map()

  constructor ({ heading, info, list }, store, schemas) {
    this.heading = heading
    this.info = info
    this.list = list
    this.store = store
    this.schemas = schemas
    this.node = undefined
  }

  show (node) {
    this.node = node
    this.schemas.cancel()
    this.#shown.clear()
    this.list.replaceChildren()
    this.heading.textContent = node === undefined ? 'Messages' : node.path
    this.counts = element('span')
    this.info.replaceChildren(this.counts)
    if (node === undefined) {
      this.counts.textContent = 'Select a topic in the tree to see its messages.'
      return
    }
    const schema = this.schemas.schemaFor(node.path)
    if (schema === undefined) {
      this.info.append(' No schema for this topic.')
    } else {
      const link = element('a', undefined, schema.id)
      link.href = schema.path
      link.target = '_blank'
      link.rel = 'noopener'
      this.info.append(' Schema: ', link, ` (for ${schema.filter}).`)
    }
    this.render()
  }

  /** Brings the view up to date; `touched`: the topics whose messages changed (all when absent). */
  render (touched) {
    const node = this.node
    if (node === undefined || (touched !== undefined && !touched.has(node.path))) return
    this.refreshCounts()
    const messages = this.store.list(node.path)
    for (const [message, entry] of this.#shown) {
      if (message.dropped === true || !messages.includes(message)) {
        entry.item.remove()
        this.#shown.delete(message)
      }
    }
    for (let i = 0; i < messages.length; i++) {
      const message = messages[messages.length - 1 - i]
      let entry = this.#shown.get(message)
      if (entry === undefined) this.#shown.set(message, entry = this.#entry(message, i === 0))
      const at = this.list.children[i]
      if (at !== entry.item) this.list.insertBefore(entry.item, at ?? null)
      this.schemas.check(message)
      this.#showVerdict(message, entry)
    }
  }

  /** The selected topic's counts and rate as they stand (every second, and with its messages). */
  refreshCounts () {
    const node = this.node
    if (node === undefined) return
    if (node.own === 0) {
      this.counts.textContent = `No message on this topic itself; ${plural(node.count, 'message')} below it.`
      return
    }
    const rate = node.rate(second())
    this.counts.textContent = `${plural(node.own, 'message')} (${this.store.list(node.path).length.toLocaleString('en')} kept, newest first)${rate > 0 ? `, ${rate.toFixed(1)}/s` : ''}.`
  }

  #entry (message, open) {
    const item = element('li', message.history === true ? 'message history' : 'message')
    const details = element('details')
    const summary = element('summary')
    const time = element('time', undefined, formatTime(message.time))
    time.dateTime = new Date(message.time).toISOString()
    summary.append(time)
    if (message.history === true) summary.append(' ', element('span', 'tag', `history #${message.offset}`))
    if (message.retain === true) summary.append(' ', element('span', 'tag', 'retained'))
    if (message.user !== undefined) summary.append(' ', element('span', 'tag', `by ${message.user}`))
    summary.append(' ', element('span', 'size', plural(message.raw.length, 'byte')))
    const verdict = element('span', 'verdict')
    summary.append(' ', verdict)
    details.append(summary)
    const entry = { item, details, verdict, errors: undefined, shownVerdict: undefined }
    const renderBody = () => {
      if (entry.errors !== undefined) return
      entry.errors = element('ul', 'errors')
      const diff = element('details', 'diff')
      diff.append(element('summary', undefined, 'Changes from the previous message'))
      diff.addEventListener('toggle', () => {
        if (!diff.open || diff.childElementCount > 1) return
        const previous = this.store.previous(message)
        diff.append(previous === undefined ? element('p', 'note', 'No earlier message of this topic is kept.') : diffElement(previous.raw, message.raw))
      })
      details.append(entry.errors, payloadElement(message.raw), diff)
      entry.shownVerdict = undefined
      this.#showVerdict(message, entry)
    }
    details.addEventListener('toggle', () => { if (details.open) renderBody() })
    if (open) {
      details.open = true
      renderBody()
    }
    item.append(details)
    return entry
  }

  #showVerdict (message, entry) {
    const verdict = message.verdict
    if (entry.shownVerdict === verdict && verdict !== undefined) return
    entry.shownVerdict = verdict
    entry.verdict.title = ''
    if (verdict === undefined) {
      entry.verdict.className = 'verdict'
      entry.verdict.textContent = message.queued === true ? 'checking its schema…' : ''
    } else if (verdict.valid === true) {
      entry.verdict.className = 'verdict valid'
      entry.verdict.textContent = '✓ matches its schema'
    } else if (verdict.valid === false) {
      entry.verdict.className = 'verdict invalid'
      entry.verdict.textContent = `✗ does not match its schema (${plural(verdict.errors.length, 'error')})`
    } else if (verdict.valid === null) {
      entry.verdict.className = 'verdict'
      entry.verdict.textContent = ''
    } else {
      entry.verdict.className = 'verdict unchecked'
      entry.verdict.textContent = 'schema not checked'
      entry.verdict.title = verdict.why
    }
    entry.errors?.replaceChildren(...(verdict?.valid === false ? verdict.errors.map(error => element('li', undefined, error)) : []))
  }
}
