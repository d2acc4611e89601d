import type { HistoryEntry } from './http-api.js'

/** The rule's decisions by its definition, computed apart from the broker: the offsets of the events that completed a window. */
export function windowsOf (entries: readonly HistoryEntry[], endpoints: ReadonlyArray<(topic: string) => boolean>, periodMs: number): number[] {
  const held = endpoints.map(() => [] as number[])
  const fired: number[] = []
  for (const e of [...entries].sort((a, b) => a.offset - b.offset)) {
    const matching = endpoints.map((matches, i) => matches(e.topic) ? i : -1).filter(i => i >= 0)
    if (matching.length === 0) continue
    for (const i of matching) held[i]!.push(e.timestamp)
    for (const h of held) while (h.length > 0 && h[0]! < e.timestamp - periodMs) h.shift()
    if (held.every(h => h.length > 0)) {
      fired.push(e.offset)
      for (const h of held) h.length = 0
    }
  }
  return fired
}
