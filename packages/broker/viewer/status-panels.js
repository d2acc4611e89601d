/** What the broker panel shows: Mosquitto's names, as the broker publishes them every sysInterval. */
export const SYS_TOPICS = [
  '$SYS/broker/clients/connected',
  '$SYS/broker/load/messages/received/1min',
  '$SYS/broker/load/messages/sent/1min',
  '$SYS/broker/uptime',
  '$SYS/broker/version'
]
/** Each bridge's health, retained: `{ state, since, lastEventAt, outboxDepth }`. */
export const BRIDGES_FILTER = 'firehose/bridges/#'
/** A connected bridge with nothing newer than this (its last event, or else its connection) is stale. */
export const STALE_AFTER_MS = 10 * 60 * 1000

const decoder = new TextDecoder()
const text = payload => decoder.decode(payload)

function formatDuration (seconds) {
  const units = [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]]
  const parts = []
  let rest = Math.max(0, Math.floor(seconds))
  for (const [unit, size] of units) {
    if (rest >= size || (unit === 's' && parts.length === 0)) {
      parts.push(`${Math.floor(rest / size)} ${unit}`)
      rest %= size
    }
    if (parts.length === 2) break
  }
  return parts.join(' ')
}

/** The broker's own figures from $SYS: clients connected, messages per second, uptime, version. */
export class SysPanel {
  constructor (fields) {
    this.fields = fields
  }

  update (topic, payload) {
    const value = text(payload)
    switch (topic) {
      case '$SYS/broker/clients/connected': this.fields.clients.textContent = value; break
      // Mosquitto's load figures are per minute
      case '$SYS/broker/load/messages/received/1min': this.fields.received.textContent = (Number(value) / 60).toFixed(1); break
      case '$SYS/broker/load/messages/sent/1min': this.fields.sent.textContent = (Number(value) / 60).toFixed(1); break
      case '$SYS/broker/uptime': this.fields.uptime.textContent = formatDuration(parseInt(value, 10)); break
      case '$SYS/broker/version': this.fields.version.textContent = value.replace(/^firehose version /, ''); break
    }
  }
}

/** Whether a bridge's status says it is stale: not connected, or quiet for STALE_AFTER_MS. */
export function isStale (status, now) {
  if (status.state !== 'connected') return true
  const last = Date.parse(status.lastEventAt ?? status.since)
  return !(last >= now - STALE_AFTER_MS)
}

const ago = (iso, now) => {
  const at = Date.parse(iso)
  return Number.isNaN(at) ? 'never' : `${formatDuration((now - at) / 1000)} ago`
}

/** The bridges' health, one row per `firehose/bridges/<name>`, stale ones marked. */
export class BridgesPanel {
  #rows = new Map()

  constructor (body, empty) {
    this.body = body
    this.empty = empty
  }

  update (topic, payload) {
    const name = topic.slice('firehose/bridges/'.length)
    let status
    try {
      status = payload.length === 0 ? undefined : JSON.parse(text(payload))
    } catch {
      status = { state: 'unreadable status' }
    }
    let row = this.#rows.get(name)
    if (status === undefined || status === null || typeof status !== 'object') {
      // an empty retained message: the bridge was removed
      row?.item.remove()
      this.#rows.delete(name)
    } else {
      if (row === undefined) {
        const item = document.createElement('tr')
        const cells = [document.createElement('th'), ...Array.from({ length: 3 }, () => document.createElement('td'))]
        cells[0].scope = 'row'
        cells[0].textContent = name
        item.append(...cells)
        const after = [...this.#rows.keys()].sort().find(other => other > name)
        this.body.insertBefore(item, after === undefined ? null : this.#rows.get(after).item)
        this.#rows.set(name, row = { item, cells })
      }
      row.status = status
      this.#show(row, Date.now())
    }
    this.empty.hidden = this.#rows.size > 0
  }

  /** Staleness and "ago" move with time: every few seconds. */
  refresh () {
    const now = Date.now()
    for (const row of this.#rows.values()) this.#show(row, now)
  }

  #show (row, now) {
    const { status, cells, item } = row
    const stale = isStale(status, now)
    item.classList.toggle('stale', stale)
    cells[1].textContent = `${status.state ?? 'unknown'}${stale ? ' · stale' : ''}`
    cells[2].textContent = status.lastEventAt == null ? 'none yet' : ago(status.lastEventAt, now)
    cells[3].textContent = status.outboxDepth === undefined ? '' : String(status.outboxDepth)
  }
}
