import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { EXIT } from '@firehose/runtime'
import { HISTORY_HELP } from '../help.js'
import { basicAuth, brokerUrl, request, Stop, write } from './broker-http.js'

interface Options {
  base: URL
  topics: string[]
  since: string | undefined
  until: string | undefined
  follow: boolean
  headers: Record<string, string>
}

/**
 * `firehose history`: the journal, one JSON envelope per line on stdout — the mosquitto_sub of
 * history. Pages through /v1/history; with --follow, reads /v1/events (SSE) and resumes after
 * the last offset printed whenever the connection drops.
 */
export async function historyCommand (args: string[]): Promise<number> {
  try {
    const options = parseOptions(args)
    if (options === undefined) return EXIT.ok
    if (options.follow) await followEvents(options)
    else await printPages(options)
    return EXIT.ok
  } catch (err) {
    if (err instanceof Stop) {
      process.stderr.write(`firehose history: ${err.message}\n`)
      return err.code
    }
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return EXIT.ok
    throw err
  }
}

function parseOptions (args: string[]): Options | undefined {
  let parsed
  try {
    parsed = parseArgs({
      args,
      options: {
        topic: { type: 'string', short: 't', multiple: true },
        since: { type: 'string', short: 's' },
        until: { type: 'string' },
        follow: { type: 'boolean', short: 'f' },
        url: { type: 'string', default: process.env.FIREHOSE_URL ?? 'http://127.0.0.1' },
        user: { type: 'string', short: 'u' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true,
      allowPositionals: false
    })
  } catch (err) {
    throw new Stop(EXIT.usage, `${(err as Error).message}\n\n${HISTORY_HELP}`)
  }
  const { values } = parsed
  if (values.help === true) {
    process.stdout.write(HISTORY_HELP)
    return undefined
  }
  const base = brokerUrl(values.url)
  if (values.follow === true && values.until !== undefined) throw new Stop(EXIT.usage, '--until and --follow do not go together')
  const headers: Record<string, string> = {}
  if (values.user !== undefined) {
    const password = process.env.FIREHOSE_PASSWORD
    if (password === undefined) throw new Stop(EXIT.usage, '--user: set the password in FIREHOSE_PASSWORD (never on the command line)')
    headers.authorization = basicAuth(values.user, password)
  }
  return { base, topics: values.topic ?? ['#'], since: values.since, until: values.until, follow: values.follow === true, headers }
}

function query (options: Options, extra: Record<string, string | undefined>): string {
  const params = new URLSearchParams()
  for (const topic of options.topics) params.append('topic', topic)
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) params.set(key, value)
  return params.toString()
}

async function get (url: URL, options: Options, extraHeaders: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
  return await request(url, { headers: { ...options.headers, ...extraHeaders }, signal })
}

async function printPages (options: Options): Promise<void> {
  let path: string | null = `/v1/history?${query(options, { since: options.since, until: options.until, limit: '1000' })}`
  while (path !== null) {
    const page = await (await get(new URL(path, options.base), options)).json() as { events: unknown[], next: string | null }
    for (const event of page.events) await write(`${JSON.stringify(event)}\n`)
    path = page.next
  }
}

async function followEvents (options: Options): Promise<void> {
  let lastId: string | undefined
  for (let attempt = 0; ; attempt++) {
    const url = new URL(`/v1/events?${query(options, { since: lastId === undefined ? options.since : undefined })}`, options.base)
    try {
      const response = await get(url, options, lastId === undefined ? {} : { 'last-event-id': lastId })
      attempt = 0
      let buffer = ''
      const decoder = new TextDecoder()
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true })
        let end: number
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          for (const line of buffer.slice(0, end).split('\n')) {
            if (line.startsWith('id: ')) lastId = line.slice(4)
            else if (line.startsWith('data: ')) await write(`${line.slice(6)}\n`)
          }
          buffer = buffer.slice(end + 2)
        }
      }
    } catch (err) {
      if (err instanceof Stop && err.code === EXIT.usage) throw err
      process.stderr.write(`firehose history: ${(err as Error).message}; reconnecting\n`)
    }
    await sleep(Math.min(30_000, 500 * 2 ** Math.min(attempt, 6)))
  }
}
