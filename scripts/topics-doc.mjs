// `npm run docs:topics`: writes docs/topics.md from the schema catalogue (packages/schemas).
// packages/schemas/test/topics-doc.test.ts fails while the checked-in file differs.
import { writeFile } from 'node:fs/promises'
import { Catalogue, renderTopicsDoc } from '@firehose/schemas'

const file = new URL('../docs/topics.md', import.meta.url)
await writeFile(file, renderTopicsDoc(await Catalogue.load()))
console.log(`wrote ${file.pathname}`)
