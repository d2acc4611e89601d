import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'

/**
 * Stands in for the events-log plugin's REST API: `GET /a/plugins/events-log/events/?t1=...`
 * answers every event in the log file created at or after t1 (UTC), one JSON line each.
 */
export class EventsLogStub {
  readonly requests: string[] = []
  available = true

  private constructor (private readonly server: Server, readonly port: number) {}

  static async start (options: { logFile: string, port: number, username: string, password: string }): Promise<EventsLogStub> {
    const expected = 'Basic ' + Buffer.from(`${options.username}:${options.password}`).toString('base64')
    const holder: { stub?: EventsLogStub } = {}
    const server = createServer((req, res) => {
      holder.stub?.requests.push(req.url ?? '')
      const answer = async (): Promise<unknown> => {
        const url = new URL(req.url ?? '/', 'http://stub')
        if (holder.stub?.available !== true || url.pathname !== '/a/plugins/events-log/events/') return res.writeHead(404).end('Not Found')
        if (req.headers.authorization !== expected) return res.writeHead(401).end('Unauthorized')
        const t1 = url.searchParams.get('t1')
        const since = t1 === null ? NaN : Date.parse(t1.replace(' ', 'T') + 'Z') / 1000
        if (Number.isNaN(since)) return res.writeHead(400).end('t1 must be yyyy-MM-dd HH:mm:ss')
        const lines = (await readFile(options.logFile, 'utf8')).split('\n').filter(line => {
          try {
            const created = (JSON.parse(line) as { eventCreatedOn?: unknown }).eventCreatedOn
            return typeof created === 'number' && created >= since
          } catch {
            return false
          }
        })
        return res.writeHead(200, { 'content-type': 'application/json' }).end(lines.map(l => l + '\n').join(''))
      }
      answer().catch(() => res.writeHead(500).end())
    })
    await new Promise<void>(resolve => server.listen(options.port, '127.0.0.1', () => resolve()))
    holder.stub = new EventsLogStub(server, options.port)
    return holder.stub
  }

  async close (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise(resolve => this.server.close(resolve))
  }
}
