import type { Server, Socket } from 'node:net'
import type { Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { closeServer, listen } from '@firehose/runtime'
import type { Limits, ListenerConfig } from '../config/types.js'
import { readTlsOptions } from './tls-options.js'

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

/** The TCP socket under a TLS one: the one the connection guard admitted. */
export function rawSocket (socket: Socket): Socket {
  return (socket as Socket & { _parent?: Socket })._parent ?? socket
}

/**
 * How much a connection's stream buffers before write() says "wait for drain". Aedes waits
 * for drain holding one of its delivery slots, so with the default 16 KiB a subscriber that
 * stops reading held every slot ~100 small messages after its kernel buffers filled, and so
 * stalled delivery to everyone,
 * long before the stalled-subscriber guard (authorizeForward, limits.maxQueuedBytes) could act.
 * Buffering up to that limit lets the guard disconnect it first.
 */
export function writeBufferBytes (limits: Limits): number {
  return limits.maxQueuedBytes
}

/**
 * Listens with a server a listener file made, logs it, and gives the broker its handle:
 * the bound port, TLS reload (SIGHUP) and close (`beforeClose` first, for the WebSocket layer).
 */
export async function serveListener (server: Server, config: ListenerConfig, options: {
  key: string
  source: string
  logger: Logger
  /** what it listens for, for the log: `MQTT over TLS` */
  description: string
  beforeClose?: () => void
}): Promise<Listener> {
  server.on('error', err => options.logger.error({ err }, 'listener error'))
  const port = await listen(server, config)
  options.logger.info({ event: 'listener.listening', port, host: config.host ?? '*' }, 'listening for %s', options.description)
  return {
    config,
    server,
    port,
    reloadTls: async () => {
      if (config.tls !== undefined && 'setSecureContext' in server) (server as TlsServer).setSecureContext(await readTlsOptions(config.tls, options.key, options.source))
    },
    close: async () => {
      options.beforeClose?.()
      await closeServer(server)
    }
  }
}
