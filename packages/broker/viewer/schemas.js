import { topicMatches } from './topic-filter.js'

/** Validations under way at once: the messages shown are checked a few at a time, newest first. */
const PARALLEL = 2

/**
 * The broker's schema catalogue (GET /v1/schemas: `{ "<MQTT filter>": "/v1/schemas/<id>" }`,
 * the first filter a topic matches naming its schema) and the check of shown messages against
 * it (POST /v1/schemas/validate?topic=). A message's `verdict` becomes `{ valid: true }`,
 * `{ valid: false, errors }`, `{ valid: null }` (no schema) or `{ valid: undefined, why }`
 * (not checked); `onVerdict(message)` follows.
 */
export class Schemas {
  #index = []
  #queue = []
  #running = 0
  #unavailable = undefined

  constructor (onVerdict) {
    this.onVerdict = onVerdict
  }

  async load () {
    const res = await fetch('/v1/schemas')
    if (!res.ok) throw new Error(`GET /v1/schemas: ${res.status}`)
    this.#index = Object.entries(await res.json()).map(([filter, path]) => ({ filter, path, id: path.slice(path.lastIndexOf('/') + 1) }))
  }

  /** `{ filter, path, id }` of the schema for `topic`, or undefined. */
  schemaFor (topic) {
    return this.#index.find(entry => topicMatches(entry.filter, topic))
  }

  /** Checks `message` soon, unless it has been or is queued. */
  check (message) {
    if (message.verdict !== undefined || message.queued === true) return
    if (this.schemaFor(message.topic) === undefined) {
      message.verdict = { valid: null }
      return
    }
    if (this.#unavailable !== undefined) {
      message.verdict = { valid: undefined, why: this.#unavailable }
      return
    }
    message.queued = true
    this.#queue.push(message)
    this.#pump()
  }

  /** Forgets the checks not started (another topic is shown). */
  cancel () {
    for (const message of this.#queue) message.queued = false
    this.#queue.length = 0
  }

  #pump () {
    while (this.#running < PARALLEL && this.#queue.length > 0) {
      const message = this.#queue.shift()
      message.queued = false
      if (message.dropped === true) continue
      this.#running++
      this.#validate(message).then(verdict => {
        message.verdict = verdict
        this.onVerdict(message)
      }).finally(() => {
        this.#running--
        this.#pump()
      })
    }
  }

  async #validate (message) {
    try {
      const res = await fetch(`/v1/schemas/validate?topic=${encodeURIComponent(message.topic)}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: message.raw
      })
      if (res.status === 404) this.#unavailable = 'this broker does not check payloads (no POST /v1/schemas/validate)'
      if (!res.ok) return { valid: undefined, why: this.#unavailable ?? `the check failed: ${res.status}` }
      const verdict = await res.json()
      return verdict.valid === false ? { valid: false, errors: verdict.errors ?? [] } : { valid: verdict.valid }
    } catch (err) {
      return { valid: undefined, why: `the check failed: ${err.message}` }
    }
  }
}
