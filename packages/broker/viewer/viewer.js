import { commandsFor } from './commands.js'
import { HISTORY_CAP, historyMessage, loadHistory } from './history.js'
import { MessageStore } from './message-store.js'
import { MessageView } from './message-view.js'
import { Schemas } from './schemas.js'
import { BRIDGES_FILTER, BridgesPanel, SYS_TOPICS, SysPanel } from './status-panels.js'
import { filterCovers, filterProblem, topicMatches } from './topic-filter.js'
import { second, TopicTree } from './topic-tree.js'

// The live viewer (docs/viewer.md): mqtt.js over WebSocket to the host the page came from.
// Messages are buffered as they arrive and counted once per animation frame; the DOM changes
// only there (and not at all while paused).

/** Messages waiting for a frame; past it they are counted at once (a hidden tab gets no frames). */
const MAX_PENDING = 5_000

const $ = id => document.getElementById(id)
const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/mqtt`

let filter = '#'
let paused = false
/** `{ username, password }` once logged in */
let credentials
let client
let subscribed = []
const pending = []
let frameAsked = false
let countedWhilePaused = 0
const stats = { received: 0, counted: 0, history: 0 }

const store = new MessageStore()
const schemas = new Schemas(message => { store.touched.add(message.topic); askFrame() })
const view = new MessageView({ heading: $('topic-heading'), info: $('topic-info'), list: $('messages') }, store, schemas)
const tree = new TopicTree($('tree'), node => view.show(node))
const sys = new SysPanel({ clients: $('sys-clients'), received: $('sys-received'), sent: $('sys-sent'), uptime: $('sys-uptime'), version: $('sys-version') })
const bridges = new BridgesPanel($('bridges-body'), $('bridges-empty'))

function askFrame () {
  if (frameAsked) return
  frameAsked = true
  requestAnimationFrame(frame)
}

function frame () {
  frameAsked = false
  countPending()
  if (paused) return
  tree.render()
  view.render(store.touched)
  store.touched.clear()
  showSummary()
}

function countPending () {
  const now = second()
  for (const message of pending) {
    const node = tree.node(message.topic)
    if (node === undefined || !store.add(message)) continue
    tree.count(node, message.history === true ? undefined : now)
    stats.counted++
    if (paused) countedWhilePaused++
  }
  pending.length = 0
}

function receive (message) {
  pending.push(message)
  if (pending.length >= MAX_PENDING) countPending()
  askFrame()
}

function onMessage (topic, payload, packet) {
  stats.received++
  // a copy: the payload may share its memory with the whole WebSocket frame it came in
  if (topicMatches(filter, topic)) receive({ topic, raw: new Uint8Array(payload), time: Date.now(), retain: packet.retain })
  if (topic.startsWith('$SYS/')) sys.update(topic, payload)
  else if (topicMatches(BRIDGES_FILTER, topic)) bridges.update(topic, payload)
}

function showSummary () {
  const parts = [`${tree.topics.toLocaleString('en')} ${tree.topics === 1 ? 'topic' : 'topics'}`, `${tree.messages.toLocaleString('en')} messages`]
  if (tree.overflow > 0) parts.push(`${tree.overflow.toLocaleString('en')} more on topics not shown (the tree is full)`)
  $('tree-summary').textContent = parts.join(', ')
}

function showConnection (state, text) {
  const status = $('connection')
  status.dataset.state = state
  status.textContent = text
}

// ---- the connection

function connect () {
  client?.end(true)
  const options = {
    clientId: `firehose-viewer-${Math.random().toString(16).slice(2, 10)}`,
    clean: true,
    reconnectPeriod: 3000,
    connectTimeout: 10_000,
    resubscribe: false,
    // mqtt.js's default timers run in a worker made from a blob:, which the page's CSP refuses
    timerVariant: 'native',
    ...(credentials === undefined ? {} : credentials)
  }
  const who = credentials?.username ?? 'anonymous'
  const c = globalThis.mqtt.connect(url, options)
  client = c
  subscribed = []
  showConnection('connecting', `Connecting to ${url}…`)
  const current = () => client === c
  c.on('connect', () => {
    if (!current()) return
    showConnection('connected', `Connected to ${url} as ${who}`)
    subscribe()
  })
  c.on('reconnect', () => { if (current()) showConnection('connecting', `Reconnecting to ${url}…`) })
  c.on('offline', () => { if (current()) showConnection('offline', `Disconnected from ${url}: trying again every 3 s`) })
  c.on('error', err => {
    // 4: bad user name or password, 5: not authorized; trying again would not help
    if (err.code === 4 || err.code === 5) {
      c.end(true)
      showConnection('refused', `The broker refused ${who}: ${err.message}. Check the user and password, or log out.`)
    }
  })
  c.on('message', onMessage)
}

function subscribe () {
  if (client?.connected !== true) return
  if (subscribed.length > 0) client.unsubscribe(subscribed)
  const wanted = filter
  subscribed = [filter, ...[...SYS_TOPICS, BRIDGES_FILTER].filter(side => !filterCovers(filter, side))]
  client.subscribe(subscribed, { qos: 0 }, (err, granted) => {
    if (err !== null && err !== undefined) {
      showFilterProblem(`Subscribing failed: ${err.message}`)
      return
    }
    const refused = (granted ?? []).some(g => g.topic === wanted && g.qos === 128)
    if (wanted === filter) showFilterProblem(refused ? `The broker refused ${wanted} to ${credentials?.username ?? 'anonymous readers'}.` : undefined)
  })
}

// ---- the controls

function showFilterProblem (problem) {
  $('filter').setAttribute('aria-invalid', String(problem !== undefined))
  $('filter-problem').textContent = problem ?? ''
}

function setFilter (value) {
  const problem = filterProblem(value)
  showFilterProblem(problem)
  if (problem !== undefined) return
  filter = value
  historyAbort?.abort()
  historyRanges = []
  pending.length = 0
  store.clear()
  tree.clear()
  view.show(undefined)
  showSummary()
  showCommands()
  subscribe()
}

$('filter-form').addEventListener('submit', event => {
  event.preventDefault()
  setFilter($('filter').value.trim())
})

function setPaused (value) {
  paused = value
  countedWhilePaused = 0
  $('pause').setAttribute('aria-pressed', String(paused))
  $('pause').textContent = paused ? 'Resume' : 'Pause'
  if (!paused) askFrame()
}
$('pause').addEventListener('click', () => setPaused(!paused))

$('login').addEventListener('submit', event => {
  event.preventDefault()
  const username = $('user').value
  if (username === '') return
  credentials = { username, password: $('password').value }
  $('logout').hidden = false
  $('login-summary').textContent = `Logged in as ${username}`
  showCommands()
  connect()
})
$('logout').addEventListener('click', () => {
  credentials = undefined
  $('password').value = ''
  $('logout').hidden = true
  $('login-summary').textContent = 'Log in'
  showCommands()
  connect()
})

/** HTTP Basic with the login, for the history API. */
function authHeaders () {
  if (credentials === undefined) return {}
  const bytes = new TextEncoder().encode(`${credentials.username}:${credentials.password}`)
  return { authorization: `Basic ${btoa(String.fromCharCode(...bytes))}` }
}

// ---- history

let historyAbort
/** the offsets loaded so far for this filter, one `{ from, to }` per load */
let historyRanges = []
const localInput = at => new Date(at - at.getTimezoneOffset() * 60_000).toISOString().slice(0, 16)
$('since').value = localInput(new Date(Date.now() - 3600_000))

$('history-form').addEventListener('submit', event => {
  event.preventDefault()
  const since = new Date($('since').value)
  const status = $('history-status')
  if (Number.isNaN(since.getTime())) {
    status.textContent = 'Choose a date and time to load from.'
    return
  }
  historyAbort?.abort()
  const abort = historyAbort = new AbortController()
  // the offsets this load covers: loading again skips what an earlier load brought
  const range = { from: Infinity, to: -Infinity }
  const loadedBefore = event => historyRanges.some(r => r !== range && event.offset >= r.from && event.offset <= r.to)
  historyRanges.push(range)
  status.textContent = `Loading ${filter} since ${since.toLocaleString()}…`
  loadHistory({
    filter,
    // the input is local time; the API reads a time without a zone as UTC
    since: since.toISOString(),
    headers: authHeaders(),
    signal: abort.signal,
    onEvents: events => {
      for (const event of events) {
        range.from = Math.min(range.from, event.offset)
        range.to = Math.max(range.to, event.offset)
        if (loadedBefore(event)) continue
        stats.history++
        receive(historyMessage(event))
      }
    }
  }).then(({ loaded, more }) => {
    status.textContent = `Loaded ${loaded.toLocaleString('en')} ${loaded === 1 ? 'event' : 'events'} of ${filter} since ${since.toLocaleString()}${more ? ` (stopped at ${HISTORY_CAP.toLocaleString('en')}: choose a later time or a narrower filter)` : ''}.`
  }, err => {
    if (!abort.signal.aborted) status.textContent = `History could not be loaded: ${err.message}`
  })
})

// ---- the same in a terminal

function showCommands () {
  const commands = commandsFor(filter, location, credentials?.username)
  $('command-mqtt').value = commands.mqtt
  $('command-http').value = commands.http
}

for (const [button, field] of [['copy-mqtt', 'command-mqtt'], ['copy-http', 'command-http']]) {
  $(button).addEventListener('click', () => {
    const text = $(field).value
    const status = $('copy-status')
    const fallback = () => {
      $(field).focus()
      $(field).select()
      status.textContent = 'The clipboard is not available here (plain http): the command is selected, copy it with Ctrl+C.'
    }
    if (navigator.clipboard?.writeText === undefined) {
      fallback()
      return
    }
    navigator.clipboard.writeText(text).then(() => { status.textContent = 'Copied.' }, fallback)
  })
}

// ---- every second: rates, the pause button, the bridges' staleness

setInterval(() => {
  bridges.refresh()
  if (paused) {
    $('pause').textContent = countedWhilePaused > 0 ? `Resume (${countedWhilePaused.toLocaleString('en')} new)` : 'Resume'
    return
  }
  tree.refreshRates()
  view.refreshCounts()
}, 1000)

// ---- for tests and the curious: window.__viewer

/** Records the gaps between animation frames, in ms, until stopped. */
const frames = {
  gaps: [],
  recording: false,
  start () {
    frames.gaps = []
    frames.recording = true
    let last = performance.now()
    const tick = now => {
      frames.gaps.push(now - last)
      last = now
      if (frames.recording) requestAnimationFrame(tick)
    }
    requestAnimationFrame(tick)
  },
  stop () {
    frames.recording = false
    return frames.gaps
  }
}

window.__viewer = {
  get client () { return client },
  get filter () { return filter },
  stats,
  store,
  tree,
  frames
}

showCommands()
showSummary()
view.show(undefined)
schemas.load().catch(err => { $('topic-info').append(` (schemas unavailable: ${err.message})`) })
connect()
