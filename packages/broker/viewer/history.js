/** Events loaded by one "load history" at most: the viewer keeps no more (message-store.js). */
export const HISTORY_CAP = 5_000
/** Pages asked for at most: a sparse filter may come back in short pages. */
const MAX_PAGES = 20

/**
 * The journal's events on `filter` since `since` (ISO 8601), oldest first, page by page
 * (GET /v1/history, following `next`), each page handed to `onEvents`. Resolves to
 * `{ loaded, more }`: `more` when it stopped at the cap.
 */
export async function loadHistory ({ filter, since, headers, signal, onEvents }) {
  let path = `/v1/history?topic=${encodeURIComponent(filter)}&since=${encodeURIComponent(since)}&limit=1000`
  let loaded = 0
  for (let page = 0; path !== null && page < MAX_PAGES && loaded < HISTORY_CAP; page++) {
    const res = await fetch(path, { headers, signal })
    if (!res.ok) throw new Error(`the broker answered ${res.status}: ${(await res.text()).trim()}`)
    const body = await res.json()
    const events = body.events.slice(0, HISTORY_CAP - loaded)
    loaded += events.length
    onEvents(events)
    path = body.next
  }
  return { loaded, more: path !== null }
}

const utf8 = new TextEncoder()

/** A history envelope as a viewer message: the payload's bytes again (JSON re-serialised). */
export function historyMessage (event) {
  let raw
  if (event.payloadBase64 !== undefined) raw = Uint8Array.from(atob(event.payloadBase64), c => c.charCodeAt(0))
  else raw = utf8.encode(typeof event.payload === 'string' ? event.payload : JSON.stringify(event.payload))
  return { topic: event.topic, raw, time: event.timestamp, history: true, offset: event.offset, user: event.user }
}
