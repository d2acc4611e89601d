import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Catalogue, SCHEMA_DIR } from '../src/index.js'

// The catalogue compiles its validators when first used (the broker's start does not wait for
// them): every schema must still compile, and one ajv refuses must fail here, not in production.

t.test('every schema in the catalogue compiles (ajv strict mode)', async t => {
  const catalogue = await Catalogue.load()
  t.doesNotThrow(() => { catalogue.compileAll() })
  t.ok(catalogue.schemas.size >= 12, `${catalogue.schemas.size} schemas`)
})

t.test('a schema ajv refuses is found by compileAll', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'firehose-schemas-'))
  for (const file of await readdir(SCHEMA_DIR)) await writeFile(join(dir, file), await readFile(join(SCHEMA_DIR, file)))
  const broken = JSON.parse(await readFile(join(dir, 'sys.value.json'), 'utf8')) as Record<string, unknown>
  await writeFile(join(dir, 'sys.value.json'), JSON.stringify({ ...broken, notAKeyword: true }))
  const catalogue = await Catalogue.load(dir)
  t.throws(() => { catalogue.compileAll() }, /unknown keyword/)
})
