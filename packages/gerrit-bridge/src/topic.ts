/** A stream-events line, parsed; only the fields the bridge reads. */
export interface GerritEvent {
  type?: unknown
  project?: unknown
  projectName?: unknown
  eventCreatedOn?: unknown
  change?: { project?: unknown, number?: unknown }
  patchSet?: { number?: unknown }
  refUpdate?: { project?: unknown, refName?: unknown, newRev?: unknown }
  [key: string]: unknown
}

const text = (v: unknown): string | undefined => typeof v === 'string' && v !== '' ? v : undefined

/** The project as germqtt found it: `project`, else `change.project`, else `refUpdate.project` (then `projectName`). */
export function projectOf (event: GerritEvent): string | undefined {
  const project = event.project
  // 3.x ref-updated has `project` as an object on some versions; only a name is usable
  return text(project) ?? text(event.change?.project) ?? text(event.refUpdate?.project) ?? text(event.projectName)
}

/**
 * `<base>/<project>/<event-type>`; projects keep their slashes (`gerrit/openstack/nova/comment-added`).
 * An event with no project goes to `<base>/<event-type>`. Wildcard characters, which cannot
 * appear in a topic, are replaced by `_`.
 */
export function topicFor (event: GerritEvent, base: string): string | undefined {
  const type = text(event.type)
  if (type === undefined) return undefined
  const project = projectOf(event)
  // eslint-disable-next-line no-control-regex -- NUL may not appear in an MQTT topic
  const safe = (s: string): string => s.replace(/[#+\u0000]/g, '_')
  return project === undefined ? `${base}/${safe(type)}` : `${base}/${safe(project)}/${safe(type)}`
}
