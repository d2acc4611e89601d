/** The SSH command: `gerrit stream-events`, with `-s TYPE` for each type kept. */
export function streamEventsCommand (eventTypes: readonly string[]): string {
  return ['gerrit stream-events', ...eventTypes.map(t => `-s ${t}`)].join(' ')
}
