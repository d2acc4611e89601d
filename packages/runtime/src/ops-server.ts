import { createServer } from 'node:http'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import { closeServer, listen } from './listen.js'

export interface OpsServer {
  readonly port: number
  close: () => Promise<void>
}

export interface Health { ok: boolean, [key: string]: unknown }

/**
 * `/metrics` (Prometheus) and `/healthz` (JSON; 200 when ok, else 503) on their own port,
 * loopback by default: the broker's admin server and every bridge's metrics server.
 */
export async function startOpsServer (
  options: { host: string, port: number, name: string },
  deps: { registry: Registry, health: () => Health, logger: Logger }
): Promise<OpsServer> {
  const server = createServer((req, res) => {
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
  const port = await listen(server, options)
  deps.logger.info({ event: 'ops.listening', host: options.host, port }, '%s HTTP: /metrics and /healthz', options.name)
  return { port, close: async () => await closeServer(server) }
}
