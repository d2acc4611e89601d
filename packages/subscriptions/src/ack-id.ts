/**
 * An ack id names one delivery of one event: `<offset>-<delivery>`. An ack of an earlier
 * delivery (its deadline passed, the event went out again) is stale and acks nothing.
 */
export const ackIdOf = (offset: number, delivery: number): string => `${offset}-${delivery}`

export function parseAckId (ackId: unknown): { offset: number, delivery: number } | undefined {
  if (typeof ackId !== 'string') return undefined
  const m = /^(\d{1,16})-(\d{1,6})$/.exec(ackId)
  return m === null ? undefined : { offset: Number(m[1]), delivery: Number(m[2]) }
}
