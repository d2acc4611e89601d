/** Where a reader asked to start: an offset, or a time (ms since the epoch). */
export type Start = { offset: number } | { timestamp: number }

/** The largest offset: below it an integer is an offset, from it up a ms timestamp (2001-09-09). */
export const TIMESTAMP_FROM = 1e12

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i

/**
 * A `since` value: an offset (an integer below 10^12), a ms timestamp (an integer from 10^12
 * up) or an ISO 8601 date or date and time; without a zone, UTC.
 */
export function parseSince (value: string): Start | undefined {
  const text = value.trim()
  if (/^\d+$/.test(text)) {
    const n = Number(text)
    if (!Number.isSafeInteger(n)) return undefined
    return n < TIMESTAMP_FROM ? { offset: n } : { timestamp: n }
  }
  const m = ISO_DATE.exec(text)
  if (m === null) return undefined
  // Date.parse takes a date and time without a zone as local time: UTC is meant
  const ms = Date.parse(m[1] === undefined && text.length > 10 ? `${text.replace(' ', 'T')}Z` : text.replace(' ', 'T'))
  return Number.isNaN(ms) ? undefined : { timestamp: ms }
}

/** A datetime header or parameter (X-StreamOffsetFromDatetime): ISO 8601 only. */
export function parseDatetime (value: string): Start | undefined {
  const start = parseSince(value)
  return start !== undefined && 'timestamp' in start && !/^\d+$/.test(value.trim()) ? start : undefined
}

export const SINCE_PROBLEM = 'is not an offset, a ms timestamp or an ISO 8601 date'
