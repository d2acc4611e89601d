/** A rate is the messages of the last RATE_SECONDS whole seconds, per second. */
export const RATE_SECONDS = 5
/** Nodes (topic levels) in the tree; past it, messages on new topics are counted apart, not shown. */
export const MAX_NODES = 10_000

const collator = new Intl.Collator(undefined, { numeric: true })
/** The current second, for rates. */
export const second = () => Math.floor(performance.now() / 1000)

class TopicNode {
  constructor (name, parent) {
    this.name = name
    this.parent = parent
    this.path = parent === null || parent.parent === null ? name : `${parent.path}/${name}`
    /** sorted by name */
    this.children = []
    this.byName = new Map()
    /** messages on this topic and below */
    this.count = 0
    /** messages on this topic exactly */
    this.own = 0
    this.expanded = false
    /** its row, while shown: { item, count, rate, group } */
    this.el = null
    this.shownRate = ''
    // live messages per second, for the last RATE_SECONDS seconds and the current one
    this.seconds = new Int32Array(RATE_SECONDS + 1).fill(-1)
    this.hits = new Uint32Array(RATE_SECONDS + 1)
  }

  hit (now) {
    const i = now % this.seconds.length
    if (this.seconds[i] !== now) {
      this.seconds[i] = now
      this.hits[i] = 0
    }
    this.hits[i]++
  }

  rate (now) {
    let sum = 0
    for (let i = 0; i < this.seconds.length; i++) if (this.seconds[i] < now && this.seconds[i] >= now - RATE_SECONDS) sum += this.hits[i]
    return sum / RATE_SECONDS
  }

  /** Whether a message came in the rate's window or the current second. */
  recent (now) {
    return this.seconds.some(s => s >= now - RATE_SECONDS)
  }

  indexIn (siblings) {
    let low = 0
    let high = siblings.length
    while (low < high) {
      const mid = (low + high) >> 1
      if (collator.compare(siblings[mid].name, this.name) < 0) low = mid + 1
      else high = mid
    }
    return low
  }
}

const formatRate = rate => rate === 0 ? '' : `${rate < 10 ? rate.toFixed(1) : Math.round(rate)}/s`

/**
 * The topic tree, built from what arrives: counting (`node`, `count`) changes only the model;
 * `render` shows what changed since, in place — counts, new rows under open nodes — and
 * `refreshRates` the rates. Rows exist only under open nodes. Keyboard: the WAI-ARIA tree
 * pattern (arrows, Home, End, Enter or Space selects).
 */
export class TopicTree {
  constructor (list, onSelect) {
    this.list = list
    this.onSelect = onSelect
    this.elements = new WeakMap()
    this.ids = 0
    list.addEventListener('click', event => this.#onClick(event))
    list.addEventListener('keydown', event => this.#onKey(event))
    this.clear()
  }

  clear () {
    this.root = new TopicNode('', null)
    this.root.expanded = true
    this.root.el = { group: this.list }
    this.byTopic = new Map()
    this.size = 0
    this.topics = 0
    this.messages = 0
    /** messages on topics the full tree could not take */
    this.overflow = 0
    this.dirty = new Set()
    this.active = new Set()
    this.selected = null
    this.tabStop = null
    this.list.replaceChildren()
  }

  /** The node of `topic`, made when new; undefined (and counted apart) when the tree is full. */
  node (topic) {
    const known = this.byTopic.get(topic)
    if (known !== undefined) return known
    const levels = topic.split('/')
    let node = this.root
    let missing = 0
    for (const name of levels) {
      node = node?.byName.get(name)
      if (node === undefined) missing++
    }
    if (this.size + missing > MAX_NODES) {
      this.overflow++
      return undefined
    }
    node = this.root
    for (const name of levels) {
      let child = node.byName.get(name)
      if (child === undefined) {
        child = new TopicNode(name, node)
        node.byName.set(name, child)
        node.children.splice(child.indexIn(node.children), 0, child)
        this.size++
      }
      node = child
    }
    this.byTopic.set(topic, node)
    return node
  }

  /** One message on `node`'s topic; `now` (second()) for a live one, undefined for history. */
  count (node, now) {
    if (node.own++ === 0) this.topics++
    this.messages++
    for (let n = node; n !== this.root; n = n.parent) {
      n.count++
      if (now !== undefined) {
        n.hit(now)
        this.active.add(n)
      }
      this.dirty.add(n)
    }
  }

  /** Shows what changed since the last call. */
  render () {
    for (const node of this.dirty) {
      if (node.el !== null) this.#showCount(node)
      else if (node.parent.expanded && node.parent.el !== null) this.#mount(node)
    }
    this.dirty.clear()
  }

  /** Shows the rates as they stand now (every second). */
  refreshRates () {
    const now = second()
    for (const node of this.active) {
      const text = formatRate(node.rate(now))
      if (node.el !== null && text !== node.shownRate) node.el.rate.textContent = text
      node.shownRate = text
      if (!node.recent(now)) this.active.delete(node)
    }
  }

  select (node) {
    if (this.selected?.el != null) this.selected.el.item.setAttribute('aria-selected', 'false')
    this.selected = node
    if (node.el !== null) node.el.item.setAttribute('aria-selected', 'true')
    this.onSelect(node)
  }

  expand (node) {
    if (node.expanded || node.children.length === 0) return
    node.expanded = true
    if (node.el === null) return
    node.el.item.setAttribute('aria-expanded', 'true')
    for (const child of node.children) this.#mount(child)
  }

  collapse (node) {
    if (!node.expanded) return
    node.expanded = false
    if (node.el === null) return
    node.el.item.setAttribute('aria-expanded', 'false')
    const focusInside = node.el.group?.contains(document.activeElement) === true
    for (const child of node.children) this.#unmount(child)
    node.el.group?.remove()
    node.el.group = undefined
    if (this.tabStop === null || this.tabStop.el === null) this.#setTabStop(node)
    if (focusInside) node.el.item.focus()
  }

  /** Opens the way to `node` and selects it (the page's own links to a topic). */
  reveal (node) {
    const chain = []
    for (let n = node.parent; n !== this.root; n = n.parent) chain.unshift(n)
    for (const n of chain) this.expand(n)
    this.render()
    this.select(node)
  }

  #mount (node) {
    const item = document.createElement('li')
    const id = `topic-${++this.ids}`
    item.setAttribute('role', 'treeitem')
    item.setAttribute('aria-selected', String(node === this.selected))
    // named by its level and count, not by the rows below it
    item.setAttribute('aria-labelledby', `${id}-name ${id}-count`)
    item.dataset.topic = node.path
    item.tabIndex = -1
    const row = document.createElement('div')
    row.className = 'row'
    const twisty = document.createElement('span')
    twisty.className = 'twisty'
    twisty.setAttribute('aria-hidden', 'true')
    const name = document.createElement('span')
    name.className = node.name === '' ? 'name empty' : 'name'
    name.textContent = node.name === '' ? '(empty)' : node.name
    name.id = `${id}-name`
    const count = document.createElement('span')
    count.className = 'count'
    count.id = `${id}-count`
    const rate = document.createElement('span')
    rate.className = 'rate'
    rate.textContent = node.shownRate
    row.append(twisty, name, count, rate)
    item.append(row)
    node.el = { item, count, rate, group: undefined }
    this.elements.set(item, node)
    this.#showCount(node)
    const siblings = node.parent.children
    let before = null
    for (let i = node.indexIn(siblings) + 1; i < siblings.length && before === null; i++) before = siblings[i].el?.item ?? null
    this.#group(node.parent).insertBefore(item, before)
    if (this.tabStop === null) this.#setTabStop(node)
    if (node.expanded) for (const child of node.children) this.#mount(child)
  }

  #unmount (node) {
    if (node.el === null) return
    for (const child of node.children) this.#unmount(child)
    node.el.item.remove()
    node.el = null
    if (this.tabStop === node) this.tabStop = null
  }

  #group (parent) {
    if (parent.el.group === undefined) {
      parent.el.group = document.createElement('ul')
      parent.el.group.setAttribute('role', 'group')
      parent.el.item.append(parent.el.group)
    }
    return parent.el.group
  }

  #showCount (node) {
    node.el.count.textContent = node.count.toLocaleString('en')
    if (node.children.length > 0 && !node.el.item.hasAttribute('aria-expanded')) node.el.item.setAttribute('aria-expanded', String(node.expanded))
  }

  #setTabStop (node) {
    if (this.tabStop?.el != null) this.tabStop.el.item.tabIndex = -1
    this.tabStop = node
    node.el.item.tabIndex = 0
  }

  #focus (node) {
    if (node === undefined || node.el === null) return
    this.#setTabStop(node)
    node.el.item.focus()
  }

  #nodeOf (target) {
    const item = target.closest('[role="treeitem"]')
    return item === null ? undefined : this.elements.get(item)
  }

  #onClick (event) {
    const node = this.#nodeOf(event.target)
    if (node === undefined) return
    if (event.target.classList.contains('twisty')) {
      if (node.expanded) this.collapse(node)
      else this.expand(node)
    } else {
      this.select(node)
      this.expand(node)
    }
    this.#focus(node)
  }

  #onKey (event) {
    const node = this.#nodeOf(event.target)
    if (node === undefined || event.altKey || event.ctrlKey || event.metaKey) return
    const items = () => [...this.list.querySelectorAll('[role="treeitem"]')]
    const step = by => {
      const all = items()
      return this.elements.get(all[all.indexOf(node.el.item) + by])
    }
    switch (event.key) {
      case 'ArrowDown': this.#focus(step(1)); break
      case 'ArrowUp': this.#focus(step(-1)); break
      case 'ArrowRight':
        if (!node.expanded) this.expand(node)
        else this.#focus(node.children[0])
        break
      case 'ArrowLeft':
        if (node.expanded) this.collapse(node)
        else if (node.parent !== this.root) this.#focus(node.parent)
        break
      case 'Home': this.#focus(this.elements.get(items()[0])); break
      case 'End': this.#focus(this.elements.get(items().at(-1))); break
      case 'Enter':
      case ' ':
        this.select(node)
        break
      default: return
    }
    event.preventDefault()
  }
}
