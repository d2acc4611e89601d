import type { Server } from 'node:net'
import type { ListenerConfig } from '../config/types.js'

/** A started listener: what the broker needs to report, reload and close it. */
export interface Listener {
  readonly config: ListenerConfig
  readonly server: Server
  /** the bound port (useful when the config asked for port 0) */
  readonly port: number
  /** re-reads the TLS certificate files (SIGHUP) */
  reloadTls: () => Promise<void>
  close: () => Promise<void>
}

export async function listen (server: Server, config: ListenerConfig): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const hint = err.code === 'EACCES' && config.port < 1024
        ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another port in the config or with the FIREHOSE_*_PORT variables)'
        : err.code === 'EADDRINUSE' ? ' (another program is listening there)' : ''
      reject(new Error(`listener ${config.name}: cannot listen on ${config.host ?? '*'}:${config.port}: ${err.code ?? err.message}${hint}`))
    }
    server.once('error', onError)
    server.listen({ port: config.port, host: config.host }, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const address = server.address()
  return typeof address === 'object' && address !== null ? address.port : config.port
}

export async function closeServer (server: Server): Promise<void> {
  await new Promise<void>(resolve => server.close(() => resolve()))
}
