import { createHash } from 'node:crypto'
import type { GerritEvent } from './topic.js'
import { projectOf } from './topic.js'

const ACTORS = ['author', 'uploader', 'submitter', 'reviewer', 'abandoner', 'restorer', 'changer', 'editor', 'remover', 'deleter', 'adder']

/**
 * Identifies an event whether it came from the stream or from the events-log plugin, whose
 * JSON may differ in formatting: type, eventCreatedOn, project, change, patch set and ref,
 * plus who acted and a digest of the comment, so two reviewers commenting on one patch set in
 * the same second stay two events. Events without eventCreatedOn (old Gerrit 2.x) are
 * identified by their bytes.
 */
export function dedupeKey (event: GerritEvent, line: string): string {
  if (event.eventCreatedOn === undefined) return 'line:' + createHash('sha256').update(line).digest('base64url')
  const actor = ACTORS.map(a => event[a] as { username?: string, email?: string } | undefined).find(a => a !== undefined && a !== null)
  const parts = [
    event.type, event.eventCreatedOn, projectOf(event), event.change?.number, event.patchSet?.number,
    event.refUpdate?.refName, event.refUpdate?.newRev, actor?.username ?? actor?.email,
    typeof event.comment === 'string' ? createHash('sha256').update(event.comment).digest('base64url').slice(0, 16) : undefined
  ]
  return 'event:' + parts.map(p => p === undefined || p === null ? '' : String(p)).join('|')
}
