/** Messages kept per topic: the newest, by time. */
export const PER_TOPIC = 50
/** Messages kept in all: past it the first kept goes, whatever its topic. */
export const TOTAL = 5_000
/** A history event and a live message with the same bytes this close in time are one event. */
const SAME_EVENT_MS = 10_000

/**
 * The last messages of each topic, oldest first, within PER_TOPIC and TOTAL. A message is
 * `{ topic, raw (Uint8Array), time (ms), retain?, history?, offset?, user? }`; `touched` collects
 * the topics whose messages changed, for the view.
 */
export class MessageStore {
  #byTopic = new Map()
  /** every message kept, in the order it came; dropped ones are skipped when their turn comes */
  #arrival = []
  #head = 0
  size = 0
  touched = new Set()

  /** Keeps `message` (unless older than every one kept for its topic); false when it was a duplicate: already kept, to count no more. */
  add (message) {
    let list = this.#byTopic.get(message.topic)
    if (list === undefined) this.#byTopic.set(message.topic, list = [])
    let at = list.length
    while (at > 0 && list[at - 1].time > message.time) at--
    if (message.history === true && list.some(m => sameEvent(m, message))) return false
    list.splice(at, 0, message)
    this.size++
    this.touched.add(message.topic)
    this.#arrival.push(message)
    if (list.length > PER_TOPIC) this.#drop(list[0], list)
    while (this.size > TOTAL) this.#dropOldest()
    return true
  }

  /** The messages kept for `topic`, oldest first (do not change the array). */
  list (topic) {
    return this.#byTopic.get(topic) ?? []
  }

  /** The message before `message` on its topic, if kept. */
  previous (message) {
    const list = this.list(message.topic)
    const at = list.indexOf(message)
    return at > 0 ? list[at - 1] : undefined
  }

  clear () {
    this.#byTopic.clear()
    this.#arrival = []
    this.#head = 0
    this.size = 0
    this.touched.clear()
  }

  #dropOldest () {
    for (;;) {
      const message = this.#arrival[this.#head++]
      if (this.#head > 10_000) {
        this.#arrival = this.#arrival.slice(this.#head)
        this.#head = 0
      }
      if (message.dropped !== true) {
        this.#drop(message, this.list(message.topic))
        return
      }
    }
  }

  #drop (message, list) {
    list.splice(list.indexOf(message), 1)
    if (list.length === 0) this.#byTopic.delete(message.topic)
    message.dropped = true
    this.size--
    this.touched.add(message.topic)
  }
}

function sameEvent (kept, event) {
  if (kept.history === true) return kept.offset === event.offset
  if (Math.abs(kept.time - event.time) > SAME_EVENT_MS || kept.raw.length !== event.raw.length) return false
  for (let i = 0; i < kept.raw.length; i++) if (kept.raw[i] !== event.raw[i]) return false
  return true
}
