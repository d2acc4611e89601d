import { timingSafeEqual } from 'node:crypto'
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { keepReconnecting, type EventSink, type Source } from '@firehose/bridge-kit'
import type { AnsibleConfig } from './config.js'
import { requestSchema, topicFor } from './events.js'

export interface ReceiverOptions {
  ansible: AnsibleConfig
  token: string
  tls?: { cert: Buffer, key: Buffer }
  /** between attempts to listen, when the port is taken */
  backoff: { initialMs: number, maxMs: number }
}

class HttpError extends Error {
  constructor (readonly status: number, message: string, readonly reason: string) {
    super(message)
  }
}

/**
 * Receives the plugin's events over HTTP(S): bearer token, body size limit, schema. A bad
 * request gets a 4xx and publishes nothing; a good one is answered 200 only once every event
 * in it is in the outbox, so what the receiver acknowledged is never lost. Requests are taken
 * one at a time, so a run's events keep their order.
 */
export class AnsibleReceiver implements Source {
  private server: Server | undefined
  private loop: Promise<void> | undefined
  private readonly stopSignal = new AbortController()
  private queue: Promise<unknown> = Promise.resolve()
  private readonly token: Buffer
  port: number | undefined

  constructor (private readonly options: ReceiverOptions) {
    this.token = Buffer.from(`Bearer ${options.token}`)
  }

  start (sink: EventSink): void {
    const { host, port } = this.options.ansible.listen
    this.loop = keepReconnecting({
      backoff: this.options.backoff,
      signal: this.stopSignal.signal,
      attempt: async (_attempt, connected) => {
        const server = this.createServer(sink)
        this.server = server
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen(port, host, () => {
            server.off('error', reject)
            resolve()
          })
        })
        const closed = new Promise<void>((resolve, reject) => {
          server.once('close', resolve)
          server.once('error', reject)
        })
        const address = server.address()
        this.port = typeof address === 'object' && address !== null ? address.port : port
        connected()
        sink.logger.info({ event: 'ansible.receiving', host, port: this.port, tls: this.options.tls !== undefined }, 'receiving Ansible events')
        sink.sourceState('connected', { listen: `${host}:${this.port}` })
        await closed
      },
      retrying: ({ failure, retryInMs }) => {
        sink.logger.error({ event: 'ansible.cannot-listen', err: failure?.message, host, port, retryInMs }, 'receiver cannot listen')
        sink.sourceState('reconnecting', { error: failure?.message ?? 'the receiver closed' })
      }
    })
  }

  async stop (): Promise<void> {
    this.stopSignal.abort()
    const server = this.server
    if (server?.listening === true) {
      await new Promise(resolve => {
        server.close(resolve)
        server.closeIdleConnections()
      })
    }
    await this.loop
    await this.queue
  }

  private createServer (sink: EventSink): Server {
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, sink).then(body => reply(res, 200, body), (err: unknown) => {
        if (err instanceof HttpError) {
          sink.reject(err.reason, { status: err.status, message: err.message, ip: req.socket.remoteAddress })
          reply(res, err.status, { error: err.message })
        } else {
          sink.logger.error({ err }, 'cannot take the events')
          reply(res, 503, { error: 'cannot store the events now; try again' })
        }
      })
    }
    const { tls } = this.options
    const server = tls === undefined ? createHttpServer(handler) : createHttpsServer({ ...tls, minVersion: 'TLSv1.2' }, handler)
    server.requestTimeout = 30000
    return server
  }

  private async handle (req: IncomingMessage, sink: EventSink): Promise<{ accepted: number, duplicates: number }> {
    const path = (req.url ?? '/').split('?')[0]
    if (req.method === 'GET' && path === '/healthz') return { accepted: 0, duplicates: 0 }
    if (req.method !== 'POST' || path !== '/events') throw new HttpError(404, 'POST /events', 'not-found')
    const auth = Buffer.from(req.headers.authorization ?? '')
    if (auth.length !== this.token.length || !timingSafeEqual(auth, this.token)) throw new HttpError(401, 'bad or missing bearer token', 'unauthorized')
    const body = await readBody(req, this.options.ansible.maxBodyBytes)
    let json: unknown
    try {
      json = JSON.parse(body.toString('utf8'))
    } catch {
      throw new HttpError(400, 'the body is not JSON', 'malformed-json')
    }
    const parsed = requestSchema.safeParse(json)
    if (!parsed.success) {
      const first = parsed.error.issues[0]
      throw new HttpError(422, `invalid events: ${first?.path.join('.') ?? ''}: ${first?.message ?? ''}`, 'invalid-event')
    }
    // one request at a time: the events of a run stay in order in the outbox
    const run = this.queue.then(async () => {
      let accepted = 0
      let duplicates = 0
      for (const event of parsed.data.events) {
        const result = await sink.accept({ topic: topicFor(event, this.options.ansible.topicBase), payload: Buffer.from(JSON.stringify(event.payload)) }, `ansible:${event.id}`)
        if (result === 'queued') accepted++
        else duplicates++
      }
      return { accepted, duplicates }
    })
    this.queue = run.catch(() => {})
    return await run
  }
}

function reply (res: ServerResponse, status: number, body: object): void {
  if (res.headersSent) return
  res.writeHead(status, { 'content-type': 'application/json', ...(status === 413 ? { connection: 'close' } : {}) }).end(JSON.stringify(body) + '\n')
}

async function readBody (req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > max) throw new HttpError(413, `body over ${max} bytes`, 'too-large')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > max) throw new HttpError(413, `body over ${max} bytes`, 'too-large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}
