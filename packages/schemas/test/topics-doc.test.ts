import { readFile } from 'node:fs/promises'
import t from 'tap'
import { Catalogue, renderTopicsDoc, TOPIC_SCHEMAS } from '../src/index.js'

t.test('docs/topics.md is what the catalogue renders (run `npm run docs:topics` after changing a schema)', async t => {
  const rendered = renderTopicsDoc(await Catalogue.load())
  const checkedIn = await readFile(new URL('../../../docs/topics.md', import.meta.url), 'utf8')
  t.equal(checkedIn, rendered, 'docs/topics.md is up to date')
  for (const { filter, id } of TOPIC_SCHEMAS) t.ok(rendered.includes(`\`${filter}\``) && rendered.includes(`/v1/schemas/${id}`), `${filter} and its schema are in it`)
})
