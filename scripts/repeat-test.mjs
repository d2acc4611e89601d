// Runs one test file (or the subtests of it matching --grep) again and again, for failures that
// show up in one run out of several: node scripts/repeat-test.mjs --times 30 --grep TEXT FILE
// Build first (npm run build): the end-to-end tests run the built broker. Prints each run's
// result and a closing line `N of M runs passed`; exits 1 when any failed.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const usage = 'usage: node scripts/repeat-test.mjs [--times N] [--grep TEXT] FILE'
const root = fileURLToPath(new URL('..', import.meta.url))
let parsed
try {
  parsed = parseArgs({ options: { times: { type: 'string', default: '30' }, grep: { type: 'string' } }, allowPositionals: true })
} catch (err) {
  console.error(`${err.message}\n${usage}`)
  process.exit(2)
}
const times = Number(parsed.values.times)
if (parsed.positionals.length !== 1 || !Number.isInteger(times) || times < 1) {
  console.error(usage)
  process.exit(2)
}
const env = { ...process.env, TS_NODE_PROJECT: `${root}tsconfig.test.json` }
const args = [...(parsed.values.grep === undefined ? [] : [`--grep=${parsed.values.grep}`]), '--reporter=tap', '--disable-coverage', parsed.positionals[0]]
let passed = 0
for (let run = 1; run <= times; run++) {
  const started = Date.now()
  const result = spawnSync(`${root}node_modules/.bin/tap`, args, { cwd: root, env, encoding: 'utf8' })
  // a --grep that matches nothing would pass: the subtest must have run
  const ran = parsed.values.grep === undefined || result.stdout.split('\n').some(line => /^\s*ok \d+ - /.test(line) && !line.includes('# SKIP') && line.includes(parsed.values.grep))
  const ok = result.status === 0 && ran
  if (ok) passed++
  console.log(`run ${run}: ${ok ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)} s`)
  if (!ran) console.log(`no subtest matching ${parsed.values.grep} ran`)
  if (!ok) console.log(result.stdout.split('\n').filter(line => /not ok|none|twice|lost/.test(line)).slice(0, 20).join('\n'))
}
console.log(`${passed} of ${times} runs passed`)
process.exitCode = passed === times ? 0 : 1
