import type { Server } from 'node:net'

export interface ListenAddress {
  /** for messages: `mqtt:1883`, `admin`, `metrics` */
  name: string
  port: number
  host?: string
}

/** Listens and resolves with the bound port (the config may ask for port 0); a failure names the listener and the likely cause. */
export async function listen (server: Server, address: ListenAddress): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const hint = err.code === 'EACCES' && address.port < 1024
        ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE; choose another port in the config or with the FIREHOSE_*_PORT variables)'
        : err.code === 'EADDRINUSE' ? ' (another program is listening there)' : ''
      reject(new Error(`listener ${address.name}: cannot listen on ${address.host ?? '*'}:${address.port}: ${err.code ?? err.message}${hint}`))
    }
    server.once('error', onError)
    server.listen({ port: address.port, host: address.host }, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const bound = server.address()
  return typeof bound === 'object' && bound !== null ? bound.port : address.port
}

/** Resolves once the server has stopped accepting and its connections are gone. */
export async function closeServer (server: Server): Promise<void> {
  await new Promise<void>(resolve => server.close(() => resolve()))
}
