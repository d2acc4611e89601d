import { createHash } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** The viewer's files (index.html, its CSS and ES modules): packages/broker/viewer/, beside dist/ and src/. */
const VIEWER_DIR = fileURLToPath(new URL('../../viewer/', import.meta.url))

/** No inline script or style, nothing from elsewhere; MQTT over WebSocket and the API on this host only. */
const VIEWER_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const CACHE = 'public, max-age=300'
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8'
}

interface Asset { body: Buffer, gzipped: Buffer, type: string, etag: string }

/** mqtt.js's browser bundle, from the installed package: the page loads it as /viewer/mqtt.min.js. */
function mqttBundlePath (): string {
  const require = createRequire(import.meta.url)
  let path: string | undefined
  try {
    path = join(dirname(require.resolve('mqtt/package.json')), 'dist', 'mqtt.min.js')
  } catch {}
  if (path === undefined || !existsSync(path)) throw new Error(`the viewer needs mqtt.js's browser bundle (mqtt/dist/mqtt.min.js), and it is not installed${path === undefined ? '' : ` at ${path}`}: run npm install`)
  return path
}

function asset (path: string): Asset {
  const body = readFileSync(path)
  return { body, gzipped: gzipSync(body), type: TYPES[extname(path)]!, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` }
}

/** Read once, when the first listener starts: the files change only with the broker. */
let loaded: Map<string, Asset> | undefined
function assets (): Map<string, Asset> {
  if (loaded !== undefined) return loaded
  const files = new Map<string, Asset>()
  for (const name of readdirSync(VIEWER_DIR).sort()) {
    if (TYPES[extname(name)] !== undefined) files.set(name, asset(join(VIEWER_DIR, name)))
  }
  if (!files.has('index.html')) throw new Error(`the viewer's files are missing: no index.html in ${VIEWER_DIR}`)
  files.set('mqtt.min.js', asset(mqttBundlePath()))
  loaded = files
  return files
}

const accepts = (header: string | undefined, token: string): boolean => header?.split(',').some(part => part.trim().split(';')[0] === token) === true

function send (request: FastifyRequest, reply: FastifyReply, file: Asset): void {
  // weak: the same tag for the file gzipped or not
  reply.header('cache-control', CACHE).header('etag', `W/${file.etag}`).header('vary', 'accept-encoding').header('x-content-type-options', 'nosniff')
  if (file.type.startsWith('text/html')) reply.header('content-security-policy', VIEWER_CSP)
  const known = request.headers['if-none-match']?.split(',').map(tag => tag.trim().replace(/^W\//, ''))
  if (known?.includes(file.etag) === true) {
    reply.code(304).send()
  } else if (accepts(request.headers['accept-encoding'], 'gzip')) {
    // mqtt.js is 340 kB, 100 kB gzipped
    reply.type(file.type).header('content-encoding', 'gzip').send(file.gzipped)
  } else {
    reply.type(file.type).send(file.body)
  }
}

/**
 * The live viewer (docs/viewer.md): `GET /` and `/viewer/` are its page, `/viewer/<file>` its
 * files and mqtt.js. Anything else unknown keeps the not-found answer (the 426 about MQTT);
 * WebSocket upgrades never reach fastify, on these paths either.
 */
export function registerViewer (app: FastifyInstance): void {
  const files = assets()
  const index = files.get('index.html')!
  app.get('/', (request, reply) => { send(request, reply, index) })
  app.get('/viewer/', (request, reply) => { send(request, reply, index) })
  app.get('/viewer', (_request, reply) => { reply.redirect('/viewer/', 301) })
  app.get('/viewer/:file', (request, reply) => {
    const file = files.get((request.params as { file: string }).file)
    if (file === undefined) reply.callNotFound()
    else send(request, reply, file)
  })
}
