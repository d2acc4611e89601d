import { createServer, type Server } from 'node:http'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { closeServer, listen } from './listeners/listener.js'

export interface AdminServer {
  readonly port: number
  close: () => Promise<void>
}

/** `/metrics` (Prometheus) and `/healthz`, on their own port, loopback by default. */
export async function startAdminServer (
  options: { host: string, port: number },
  deps: { registry: Registry, health: () => { ok: boolean, [key: string]: unknown }, logger: Logger }
): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
    } else if (path === '/metrics') {
      deps.registry.metrics().then(body => {
        res.writeHead(200, { 'content-type': deps.registry.contentType }).end(body)
      }, (err: unknown) => {
        deps.logger.error({ err }, 'cannot collect metrics')
        res.writeHead(500).end()
      })
    } else if (path === '/healthz') {
      const health = deps.health()
      res.writeHead(health.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(health) + '\n')
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n')
    }
  })
  const port = await listen(server, { name: 'admin', port: options.port, host: options.host, protocol: 'mqtt' })
  deps.logger.info({ host: options.host, port }, 'admin HTTP: /metrics and /healthz')
  return { port, close: () => closeServer(server) }
}
