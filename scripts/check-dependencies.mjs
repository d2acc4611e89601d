// `npm test` runs this: each package's package.json must list exactly the packages its src/
// imports — no more, no less — so a package works when installed on its own and nothing
// unused is shipped. Exits 1 naming every difference.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { builtinModules } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))

/** Dependencies used without an import, and why. */
const INDIRECT = {
  '@firehose/runtime': { 'pino-pretty': 'pino loads it as a transport by name (logger.ts)' }
}

// import ... from 'x', export ... from 'x', import 'x', import('x'), require('x'), require.resolve('x'), import.meta.resolve('x')
const SPECIFIER = /(?:\bfrom\s+|\bimport\s+|\bimport\(\s*|\brequire(?:\.resolve)?\(\s*|\bimport\.meta\.resolve\(\s*)(['"])([^'"\s]+)\1/g

function sources (dir) {
  return readdirSync(dir).flatMap(name => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return sources(path)
    return /\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith('.d.ts') ? [path] : []
  })
}

function packageOf (specifier) {
  if (specifier.startsWith('.') || specifier.startsWith('/') || specifier.startsWith('node:') || builtinModules.includes(specifier.split('/')[0])) return undefined
  const parts = specifier.split('/')
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]
}

const problems = []
for (const dir of readdirSync(join(root, 'packages'))) {
  const pkgDir = join(root, 'packages', dir)
  const manifest = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'))
  const declared = new Set(Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }))
  const imported = new Map()
  for (const file of sources(join(pkgDir, 'src'))) {
    for (const [, , specifier] of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      const name = packageOf(specifier)
      if (name !== undefined && name !== manifest.name && !imported.has(name)) imported.set(name, file.slice(root.length))
    }
  }
  const indirect = INDIRECT[manifest.name] ?? {}
  for (const [name, file] of imported) {
    if (!declared.has(name)) problems.push(`${manifest.name}: imports ${name} (${file}) but its package.json does not list it`)
  }
  for (const name of declared) {
    if (!imported.has(name) && !(name in indirect)) problems.push(`${manifest.name}: package.json lists ${name}, which src/ never imports`)
  }
  // tsc -b builds a package after the packages its tsconfig references: exactly its @firehose/ dependencies
  const tsconfig = JSON.parse(readFileSync(join(pkgDir, 'tsconfig.json'), 'utf8'))
  const referenced = new Set((tsconfig.references ?? []).map(r => `@firehose/${r.path.replace('../', '')}`))
  const siblings = new Set([...declared].filter(name => name.startsWith('@firehose/')))
  for (const name of siblings) if (!referenced.has(name)) problems.push(`${manifest.name}: depends on ${name} but tsconfig.json does not reference ../${name.slice(10)}`)
  for (const name of referenced) if (!siblings.has(name)) problems.push(`${manifest.name}: tsconfig.json references ../${name.slice(10)}, which package.json does not list`)
}
if (problems.length > 0) {
  console.error(`check-dependencies: package.json files out of step with the imports:\n  - ${problems.join('\n  - ')}`)
  process.exit(1)
}
console.log('check-dependencies: every package lists exactly what it imports')
