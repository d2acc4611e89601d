const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?$/
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$/
const SIZE_BYTES: Record<string, number> = { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3, TB: 1e12, TiB: 1024 ** 4 }

/** Seconds as a number, or a string with a unit (`90s`, `15m`, `12h`, `7d`, `2w`): milliseconds, or undefined when it is neither. */
export function parseDuration (value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value * 1000 : undefined
  const m = DURATION.exec(value.trim())
  if (m === null) return undefined
  const ms = Number(m[1]) * DURATION_MS[m[2] ?? 's']!
  return ms > 0 ? ms : undefined
}

/** Bytes as a number, or a string with a unit (`512MiB`, `1GiB`, `2GB`): bytes, or undefined when it is neither. */
export function parseByteSize (value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined
  const m = SIZE.exec(value.trim())
  if (m === null) return undefined
  const bytes = Math.floor(Number(m[1]) * SIZE_BYTES[m[2] ?? 'B']!)
  return bytes > 0 ? bytes : undefined
}
