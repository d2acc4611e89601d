import type { Journal, JournalEntry } from '@firehose/journal'
import { isValidFilter, topicMatches } from '@firehose/runtime'
import { HttpError, type Reader } from './reader-access.js'
import { parseSince, SINCE_PROBLEM, type Start } from './since.js'

/** The `topic` parameters: MQTT filters, at least one, each valid and readable by `reader`. */
export function readableFilters (value: unknown, reader: Reader): string[] {
  const filters = value === undefined ? [] : Array.isArray(value) ? value.map(String) : [String(value)]
  if (filters.length === 0) throw new HttpError(400, 'topic: at least one MQTT topic filter is needed (topic=gerrit/%23)')
  for (const filter of filters) {
    if (!isValidFilter(filter)) throw new HttpError(400, `topic: ${JSON.stringify(filter)} is not an MQTT topic filter`)
    if (!reader.access.canSubscribe(filter)) throw new HttpError(403, `topic: ${JSON.stringify(filter)} may not be read by ${reader.username ?? 'anonymous readers'}`)
  }
  return filters
}

/** Topics whose answer an entry filter remembers; past it, it starts again (a stream sees few topics, mostly). */
const REMEMBERED_TOPICS = 4096

/**
 * Which entries a reader gets: its filters, then the ACL on each topic, as an MQTT subscriber
 * would. The answer for a topic is the same for the whole stream, so it is worked out once.
 */
export function entryFilter (filters: readonly string[], reader: Reader, minTimestamp = 0): (entry: JournalEntry) => boolean {
  const answers = new Map<string, boolean>()
  const readable = (topic: string): boolean => filters.some(filter => topicMatches(filter, topic)) &&
    (reader.access.readsEverything || reader.access.canReceive(topic))
  return entry => {
    if (entry.timestamp < minTimestamp) return false
    let answer = answers.get(entry.topic)
    if (answer === undefined) {
      if (answers.size >= REMEMBERED_TOPICS) answers.clear()
      answers.set(entry.topic, answer = readable(entry.topic))
    }
    return answer
  }
}

/** A `since`-like parameter, or a 400 naming it. */
export function startParameter (name: string, value: unknown): Start | undefined {
  if (value === undefined || value === '') return undefined
  const start = Array.isArray(value) ? undefined : parseSince(String(value))
  if (start === undefined) throw new HttpError(400, `${name}: ${JSON.stringify(value)} ${SINCE_PROBLEM}`)
  return start
}

/** Where reading begins: the offset, entries before `minTimestamp` skipped, and whether retention cut the start. */
export interface ResolvedStart {
  from: number
  minTimestamp: number
  /** the oldest offset held, when the reader asked for older ones */
  truncatedTo?: number
}

/** An offset start as asked (inclusive), a time start from its first entry; none: only new entries. */
export async function resolveStart (journal: Journal, start: Start | undefined): Promise<ResolvedStart> {
  const { first, last } = journal.bounds()
  if (start === undefined) return { from: last + 1, minTimestamp: 0 }
  if ('offset' in start) {
    return start.offset < first ? { from: first, minTimestamp: 0, truncatedTo: first } : { from: start.offset, minTimestamp: 0 }
  }
  return { from: await journal.offsetAt(start.timestamp), minTimestamp: start.timestamp }
}
