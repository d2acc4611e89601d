import { createHash } from 'node:crypto'
import libmime from 'libmime'
import { simpleParser, type ParsedMail } from 'mailparser'

/** One bug task from an `X-Launchpad-Bug` header: `product=nova; status=Triaged; ...`. */
export type BugTask = Record<string, string>

export interface LaunchpadMessage {
  topic: string
  payload: Record<string, unknown>
  /** identifies this message across restarts: the mail's Message-ID and the project */
  key: string
}

export type MailVerdict =
  | { kind: 'launchpad', messages: LaunchpadMessage[], messageId: string }
  | { kind: 'other' }
  | { kind: 'failed', reason: string, messageId: string }

/** A Launchpad mail has `X-Launchpad-Notification-Type`, or an `X-Generated-By` naming Launchpad. */
function isLaunchpad (mail: ParsedMail): boolean {
  return mail.headers.has('x-launchpad-notification-type') || /launchpad/i.test(headerText(mail, 'x-generated-by') ?? '')
}

function headerText (mail: ParsedMail, name: string): string | undefined {
  const value = mail.headers.get(name)
  if (value === undefined || value === null) return undefined
  // mailparser decodes the headers it knows; X-Launchpad-* arrive still RFC 2047 encoded
  if (typeof value === 'string') return libmime.decodeWords(value)
  if (Array.isArray(value)) return value.map(String).join(' ')
  if (typeof value === 'object' && 'text' in value) return String((value as { text: string }).text)
  return String(value)
}

/** Every value of a header that may repeat, unfolded (from the raw lines: mailparser keeps only one). */
function headerValues (mail: ParsedMail, name: string): string[] {
  return mail.headerLines
    .filter(h => h.key === name)
    .map(h => libmime.decodeWords(h.line.slice(h.line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim()))
}

/** `product=nova; status=Triaged; importance=Medium; assignee=None;` */
export function parseTask (value: string): BugTask {
  const task: BugTask = {}
  for (const part of value.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const key = part.slice(0, eq).trim()
    if (key !== '') task[key] = part.slice(eq + 1).trim()
  }
  return task
}

/** The project a task belongs to: the product, or for a distribution task its source package, else the distribution. */
export function projectOf (task: BugTask): string | undefined {
  return task.product ?? task.sourcepackage ?? task.distribution
}

const words = (s: string | undefined): string[] => s === undefined ? [] : s.split(/\s+/).filter(w => w !== '')
// eslint-disable-next-line no-control-regex -- NUL may not appear in an MQTT topic
const level = (s: string): string => s.replace(/[/#+\u0000]/g, '_')

/**
 * Turns a bug mail into the messages lpmqtt published, one per distinct project of its tasks:
 * topic `<base>/<project>/<event-type>/<bug-number>` (filled left to right, stopping at the
 * first missing field), payload with lpmqtt's keys plus every task, the decoded body,
 * message-id, subject and date. Mail that is not from Launchpad is `other`; Launchpad mail
 * that cannot be understood is `failed`.
 */
export async function parseMail (raw: Buffer, base: string): Promise<MailVerdict> {
  let mail: ParsedMail
  try {
    mail = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true })
  } catch (err) {
    return { kind: 'failed', reason: `unparseable MIME: ${(err as Error).message}`, messageId: fallbackId(raw) }
  }
  if (!isLaunchpad(mail)) return { kind: 'other' }
  const messageId = mail.messageId ?? fallbackId(raw)
  const subject = mail.subject ?? ''
  const bugNumber = /\[Bug (\d+)\]/.exec(subject)?.[1]
  const tasks = headerValues(mail, 'x-launchpad-bug').map(parseTask)
  if (bugNumber === undefined && tasks.length === 0) return { kind: 'failed', reason: 'no [Bug N] in the subject and no X-Launchpad-Bug header', messageId }
  if (bugNumber === undefined) return { kind: 'failed', reason: 'no [Bug N] in the subject', messageId }

  const eventType = headerText(mail, 'x-launchpad-notification-type')
  const PER_PROJECT = ['project', 'status', 'importance', 'assignee']
  const common: Record<string, unknown> = {
    'event-type': eventType ?? null,
    'bug-number': bugNumber,
    commenters: words(headerText(mail, 'x-launchpad-bug-commenters')),
    'bug-reporter': headerText(mail, 'x-launchpad-bug-reporter') ?? null,
    'bug-modifier': headerText(mail, 'x-launchpad-bug-modifier') ?? null,
    tags: words(headerText(mail, 'x-launchpad-bug-tags')),
    body: mail.text ?? '',
    tasks,
    'message-id': messageId,
    subject,
    date: mail.date?.toISOString() ?? null
  }
  for (const h of mail.headerLines) {
    // every other X-Launchpad-* header, as lpmqtt's payload had them
    const key = h.key.replace(/^x-launchpad-/, '')
    // (never one of the fields the message sets per project: an X-Launchpad-Project header
    // must not say another project than the topic's)
    if (h.key.startsWith('x-launchpad-') && !['bug', 'bug-commenters', 'bug-tags', 'bug-reporter', 'bug-modifier', 'notification-type', ...PER_PROJECT].includes(key) && !(key in common)) {
      common[key] = headerText(mail, h.key) ?? null
    }
  }

  const byProject = new Map<string | undefined, BugTask>()
  for (const task of tasks) {
    const project = projectOf(task)
    if (!byProject.has(project)) byProject.set(project, task)
  }
  if (byProject.size === 0) byProject.set(undefined, {})
  const messages = [...byProject].map(([project, task]) => {
    const fields = [project, eventType, bugNumber]
    const missing = fields.findIndex(f => f === undefined || f === '')
    const topic = [base, ...(missing < 0 ? fields : fields.slice(0, missing)).map(f => level(f!))].join('/')
    const payload = {
      project: project ?? null,
      ...common,
      status: task.status ?? null,
      importance: task.importance ?? null,
      assignee: task.assignee ?? null
    }
    return { topic, payload, key: `launchpad:${messageId}:${project ?? ''}` }
  })
  return { kind: 'launchpad', messages, messageId }
}

function fallbackId (raw: Buffer): string {
  return 'sha256:' + createHash('sha256').update(raw).digest('base64url')
}
