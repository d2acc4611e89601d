import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { compileFunction } from 'node:vm'
import type { AedesPersistence } from '../store.js'

const require = createRequire(import.meta.url)

/** One change to a store's asyncPersistence.js: `original` must be there, to the letter. */
export interface SourceEdit {
  /** the patch in this folder that makes it */
  patch: string
  original: string
  replacement: string
}

export type RedisPersistenceClass = new (options: object) => AedesPersistence

/**
 * aedes-persistence-redis's AsyncRedisPersistence with `edits` made to its source. What the
 * patches change is module-private, and the class keeps its connection in private fields, so
 * nothing can be replaced from outside: the module is compiled here from its installed text
 * with the edits (node_modules is left as installed). Each edit's text must be exactly what
 * it was written against; the self-check says so at start, this throws if it was skipped.
 */
export function loadRedisPersistence (edits: readonly SourceEdit[]): RedisPersistenceClass {
  return loadEditedModule(require.resolve('aedes-persistence-redis/asyncPersistence.js'), edits) as RedisPersistenceClass
}

/** The CommonJS module `file`, compiled from its installed text with `edits` made (node_modules is left as installed). */
export function loadEditedModule (file: string, edits: readonly SourceEdit[]): unknown {
  let text = readFileSync(file, 'utf8')
  for (const edit of edits) {
    if (!text.includes(edit.original)) throw new Error(`${file} changed: ${edit.patch} cannot apply (the self-check should have said so)`)
    text = text.replace(edit.original, () => edit.replacement) // as written: no $-patterns
  }
  const module = { exports: {} as unknown }
  const load = compileFunction(text, ['exports', 'require', 'module', '__filename', '__dirname'], { filename: file })
  load.call(module.exports, module.exports, createRequire(file), module, file, dirname(file))
  return module.exports
}

/** The self-check's verify for an edit: its original text is still in the installed module. */
export function editApplies (edit: SourceEdit, source: string, what: string): string[] {
  return source.includes(edit.original) ? [] : [`asyncPersistence.js ${what} is no longer the text the fix replaces`]
}
