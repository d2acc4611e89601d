import { fileURLToPath } from 'node:url'

export const REPO = fileURLToPath(new URL('../../', import.meta.url))
export const FIREHOSE_BIN = fileURLToPath(new URL('../../packages/cli/bin/firehose.js', import.meta.url))
