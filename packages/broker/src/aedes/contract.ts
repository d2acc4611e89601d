import type { Aedes } from 'aedes'
import type { ClientInternals } from './internals.js'
import type { PatchedPackage } from './versions.js'

/** A throwaway client Aedes made for a connection that never sends a byte: what the checks inspect. */
export interface Probe {
  broker: Aedes
  client: ClientInternals
  /** the text of an installed source file, e.g. source('aedes', 'lib/handlers/publish.js') */
  source: (pkg: PatchedPackage, file: string) => string
}

/**
 * What one patch in this folder assumes of the code it patches. The self-check runs every
 * contract at start; any problem refuses the start with the patch's name and what it was
 * written against, instead of the patch silently not applying.
 */
export interface PatchContract {
  /** the patch's file in this folder */
  patch: string
  package: PatchedPackage
  /** the source files and functions it was written against */
  writtenAgainst: string
  /** lines it relies on, by file of `package`: each must still be there, to the letter */
  sources?: Readonly<Record<string, readonly string[]>>
  /** other assumptions: one sentence per one that no longer holds; empty when all hold */
  verify?: (probe: Probe) => string[]
}

/** `problems` plus a sentence when `ok` is false. */
export function expect (problems: string[], ok: boolean, sentence: string): void {
  if (!ok) problems.push(sentence)
}

/** Checks that a source text still contains each fragment a patch relies on. */
export function expectSource (problems: string[], text: string, file: string, fragments: readonly string[]): void {
  for (const fragment of fragments) {
    if (!text.includes(fragment)) problems.push(`${file} no longer contains \`${fragment}\``)
  }
}

/** Source text holding template literals, written with `«` for a dollar sign and an opening brace (so it is not taken for a template here). */
export function withTemplates (text: string): string {
  return text.replaceAll('«', '$' + '{')
}
