import { z } from 'zod'

const status = z.enum(['OK', 'FAILED', 'UNREACHABLE', 'SKIPPED'])
/** a topic level: no wildcards, no separators */
// eslint-disable-next-line no-control-regex -- NUL may not appear in an MQTT topic
const level = z.string().min(1).max(255).regex(/^[^/#+\u0000]+$/, 'no /, # or +')

const common = {
  host: z.string().max(255).optional(),
  session: z.string().max(64).optional(),
  playbook_name: z.string().max(1024).nullable().optional(),
  playbook_id: z.uuid()
}

/** What the plugin sends: one request carries one or more events, in order. */
const eventSchema = z.discriminatedUnion('kind', [
  z.strictObject({ id: z.string().min(1).max(128), kind: z.literal('start'), payload: z.looseObject({ ...common, status: z.literal('OK') }) }),
  z.strictObject({ id: z.string().min(1).max(128), kind: z.literal('task'), payload: z.looseObject({ ...common, status, ansible_host: level, ansible_task: z.string().max(4096), ansible_result: z.record(z.string(), z.unknown()) }) }),
  z.strictObject({ id: z.string().min(1).max(128), kind: z.literal('stats'), payload: z.looseObject({ ...common, ansible_host: level, stats: z.record(z.string(), z.number().int().min(0)) }) }),
  z.strictObject({ id: z.string().min(1).max(128), kind: z.literal('finish'), payload: z.looseObject({ ...common, status: z.enum(['OK', 'FAILED']) }) })
])

export const requestSchema = z.strictObject({ events: z.array(eventSchema).min(1).max(10000) })
export type AnsibleEvent = z.output<typeof eventSchema>

/**
 * The original plugin's scheme, made consistent (it mixed playbook/playbooks and task/tasks):
 * `<base>/playbook/<uuid>/action/start`, `.../task/<host>/<STATUS>`, `.../stats/<host>`,
 * `.../action/finish/<STATUS>`.
 */
export function topicFor (event: AnsibleEvent, base: string): string {
  const root = `${base}/playbook/${event.payload.playbook_id}`
  switch (event.kind) {
    case 'start': return `${root}/action/start`
    case 'task': return `${root}/task/${event.payload.ansible_host}/${event.payload.status}`
    case 'stats': return `${root}/stats/${event.payload.ansible_host}`
    case 'finish': return `${root}/action/finish/${event.payload.status}`
  }
}
