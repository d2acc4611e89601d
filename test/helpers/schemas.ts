import type { Test } from 'tap'
import { Catalogue } from '@firehose/schemas'

let loaded: Promise<Catalogue> | undefined

/**
 * Checks `topic payload` lines (as `mosquitto_sub -v` prints them) against the schema catalogue:
 * every line's topic must have a schema, and its payload must pass it. One assertion, listing
 * every line that does not (with ajv's errors).
 */
export async function matchesCatalogue (t: Test, lines: readonly string[], what: string): Promise<void> {
  const catalogue = await (loaded ??= Catalogue.load())
  const problems: string[] = []
  for (const line of lines) {
    const space = line.indexOf(' ')
    const topic = line.slice(0, space)
    const verdict = catalogue.validate(topic, line.slice(space + 1))
    if (verdict.valid === undefined) problems.push(`${topic}: no schema in the catalogue`)
    else if (!verdict.valid) problems.push(`${topic}: ${verdict.errors.join('; ')}`)
  }
  t.ok(lines.length > 0, `${what}: something to check`)
  t.same(problems, [], `${what}: all ${lines.length} match their schemas`)
}
