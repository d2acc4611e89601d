import { createPrivateKey, generateKeyPairSync } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { calculateJwkThumbprint, exportJWK, importPKCS8, type JWK } from 'jose'
import type { SigningKey } from './push-sender.js'

/** A key as the configuration names it: a PKCS#8 PEM file, Ed25519 (EdDSA) or RSA (RS256). */
export interface SigningKeyConfig {
  file: string
  /** default: the key's JWK thumbprint (RFC 7638) */
  kid?: string
}

/** A key file the broker cannot use: which, and why. */
export class SigningKeyError extends Error {
  constructor (readonly index: number | undefined, message: string) {
    super(message)
  }
}

const PRIVATE_FIELDS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const

/** A new Ed25519 private key, PKCS#8 PEM: the broker's own when none is configured. */
export const newSigningKey = (): string => generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string

/**
 * The keys push requests are signed with, in order: the first signs, every one is published
 * (so a key rotated out keeps verifying the tokens it signed while it stays listed). None
 * configured: the broker's own Ed25519 key, in the file `defaultKey` names (made, mode 0600, on
 * first start), or as `defaultKey` gives it (a cluster's, shared through Redis).
 */
export async function loadSigningKeys (configs: readonly SigningKeyConfig[], defaultKey: string | (() => Promise<string>)): Promise<SigningKey[]> {
  if (configs.length > 0) return await Promise.all(configs.map(async (config, i) => await loadKey(config, i)))
  if (typeof defaultKey === 'function') return [await keyOf(await defaultKey(), '(the cluster\'s default key)', undefined, undefined)]
  const defaultFile = defaultKey
  // made once, on the first start: afterwards the file is there
  if (!existsSync(defaultFile)) {
    await writeFile(defaultFile, newSigningKey(), { mode: 0o600, flag: 'wx' })
      .catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw new SigningKeyError(undefined, `cannot write ${defaultFile}: ${err.message}`) })
  }
  return [await loadKey({ file: defaultFile }, undefined)]
}

async function loadKey (config: SigningKeyConfig, index: number | undefined): Promise<SigningKey> {
  let pem: string
  try {
    pem = await readFile(config.file, 'utf8')
  } catch (err) {
    throw new SigningKeyError(index, `cannot read ${config.file}: ${(err as Error).message}`)
  }
  return await keyOf(pem, config.file, config.kid, index)
}

async function keyOf (pem: string, file: string, kid: string | undefined, index: number | undefined): Promise<SigningKey> {
  let type: string | undefined
  try {
    type = createPrivateKey(pem).asymmetricKeyType
  } catch (err) {
    throw new SigningKeyError(index, `${file} is not a PEM private key: ${(err as Error).message}`)
  }
  const alg = type === 'ed25519' ? 'EdDSA' : type === 'rsa' ? 'RS256' : undefined
  if (alg === undefined) throw new SigningKeyError(index, `${file} is a ${type ?? 'unknown'} key; Ed25519 (EdDSA) or RSA (RS256) is needed`)
  let privateKey
  try {
    privateKey = await importPKCS8(pem, alg, { extractable: true })
  } catch (err) {
    throw new SigningKeyError(index, `${file}: ${(err as Error).message} (a PKCS#8 PEM, "BEGIN PRIVATE KEY", is needed)`)
  }
  const publicJwk: JWK = await exportJWK(privateKey)
  for (const field of PRIVATE_FIELDS) delete publicJwk[field]
  return { kid: kid ?? await calculateJwkThumbprint(publicJwk), alg, privateKey, publicJwk }
}
