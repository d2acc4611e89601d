import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The releases the patches in this folder were written against. package.json pins the same
 * minor versions (`~`); the self-check refuses any other, so that an upgrade is a deliberate
 * act: re-read each patch against the new source, then move these and the pins together.
 */
export const WRITTEN_FOR = {
  aedes: '1.2',
  'aedes-persistence': '11.0',
  'aedes-persistence-redis': '12.0',
  'aedes-persistence-level': '9.2',
  'mqtt-packet': '9.0',
  mqemitter: '7.1',
  'mqemitter-redis': '7.2'
} as const

export type PatchedPackage = keyof typeof WRITTEN_FOR

/** Packages only a cluster node loads: their contracts are checked on cluster nodes only. */
export const CLUSTER_ONLY: ReadonlySet<PatchedPackage> = new Set(['aedes-persistence-redis', 'mqemitter-redis'])

const require = createRequire(import.meta.url)

/** The installed version of `name`, read from its package.json (aedes' exports map hides it from require). */
export function installedVersion (name: PatchedPackage): string {
  const { version } = JSON.parse(readFileSync(join(installedDir(name), 'package.json'), 'utf8')) as { version: string }
  return version
}

/** The installed package's directory; mqtt-packet and aedes-persistence as Aedes resolves them (the parser its clients use, its memory store). */
export function installedDir (name: PatchedPackage): string {
  const aedes = dirname(fileURLToPath(import.meta.resolve('aedes')))
  if (name === 'aedes') return aedes
  if (name === 'mqtt-packet' || name === 'aedes-persistence') return dirname(createRequire(join(aedes, 'package.json')).resolve(`${name}/package.json`))
  return dirname(require.resolve(`${name}/package.json`))
}

/** Whether `version` (1.2.3) is in the minor series `series` (1.2). */
export function inSeries (version: string, series: string): boolean {
  return version === series || version.startsWith(`${series}.`)
}
