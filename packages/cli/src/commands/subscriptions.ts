import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { EXIT } from '@firehose/runtime'
import { SUBSCRIPTIONS_HELP } from '../help.js'
import { basicAuth, brokerUrl, request, Stop, write } from './broker-http.js'

/** Where the broker is and who speaks to it. */
interface Connection {
  base: URL
  username: string
  password: string
}

/** A credentials file, as `mk-pull --creds FILE` writes it. */
interface Creds {
  url: string
  username: string
  password: string
}

const OPTIONS = {
  topic: { type: 'string', short: 't', multiple: true },
  'ack-deadline': { type: 'string' },
  'max-deliveries': { type: 'string' },
  'start-at': { type: 'string' },
  ordered: { type: 'boolean' },
  audience: { type: 'string' },
  format: { type: 'string' },
  to: { type: 'string' },
  max: { type: 'string' },
  count: { type: 'string' },
  creds: { type: 'string' },
  url: { type: 'string' },
  user: { type: 'string', short: 'u' },
  help: { type: 'boolean', short: 'h' }
} as const

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>>['values']

/**
 * `firehose subscriptions`: make, list, remove, seek and listen to pull subscriptions, in the
 * shape of fioctl's event-queues. `listen` prints each event as a JSON line and acks it once
 * printed: an event is never acked before it is out.
 */
export async function subscriptionsCommand (args: string[]): Promise<number> {
  try {
    let parsed
    try {
      parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true })
    } catch (err) {
      throw new Stop(EXIT.usage, `${(err as Error).message}\n\n${SUBSCRIPTIONS_HELP}`)
    }
    const { values, positionals } = parsed
    const [action, name, ...rest] = positionals
    // mk-push takes its endpoint as a second argument
    const endpoint = action === 'mk-push' ? rest.shift() : undefined
    const extra = rest
    if (values.help === true || action === undefined) {
      process.stdout.write(SUBSCRIPTIONS_HELP)
      return action === undefined && values.help !== true ? EXIT.usage : EXIT.ok
    }
    if (extra.length > 0) throw new Stop(EXIT.usage, `unexpected argument "${extra[0]}"`)
    const needName = (): string => {
      if (name === undefined) throw new Stop(EXIT.usage, `${action}: the subscription's NAME is needed\n\n${SUBSCRIPTIONS_HELP}`)
      return name
    }
    switch (action) {
      case 'mk-pull': await make(needName(), values); break
      case 'mk-push':
        if (endpoint === undefined) throw new Stop(EXIT.usage, `mk-push: the endpoint URL is needed (mk-push NAME URL --topic FILTER)\n\n${SUBSCRIPTIONS_HELP}`)
        await make(needName(), values, endpoint)
        break
      case 'enable': await write(`${JSON.stringify(await (await call(await connection(values), 'POST', path(needName(), '/enable'))).json())}\n`); break
      case 'ls': await list(await connection(values)); break
      case 'show': await write(`${JSON.stringify(await (await call(await connection(values), 'GET', path(needName()))).json(), null, 2)}\n`); break
      case 'rm': await call(await connection(values), 'DELETE', path(needName())); break
      case 'seek': await seek(needName(), values); break
      case 'listen': await listen(needName(), values); break
      default: throw new Stop(EXIT.usage, `unknown action "${action}"\n\n${SUBSCRIPTIONS_HELP}`)
    }
    return EXIT.ok
  } catch (err) {
    if (err instanceof Stop) {
      process.stderr.write(`firehose subscriptions: ${err.message}\n`)
      return err.code
    }
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return EXIT.ok
    throw err
  }
}

const path = (name: string, tail = ''): string => `/v1/subscriptions/${encodeURIComponent(name)}${tail}`

/** --creds FILE when it exists; else --url/FIREHOSE_URL, --user/FIREHOSE_USER and FIREHOSE_PASSWORD. */
async function connection (values: Values, mayWriteCreds = false): Promise<Connection> {
  if (values.creds !== undefined && existsSync(values.creds)) {
    let creds: Partial<Creds>
    try {
      creds = JSON.parse(await readFile(values.creds, 'utf8')) as Partial<Creds>
    } catch (err) {
      throw new Stop(EXIT.usage, `--creds: cannot read ${values.creds}: ${(err as Error).message}`)
    }
    for (const key of ['url', 'username', 'password'] as const) {
      if (typeof creds[key] !== 'string' || creds[key] === '') throw new Stop(EXIT.usage, `--creds: ${values.creds} has no "${key}"`)
    }
    return { base: brokerUrl(creds.url!, `--creds ${values.creds}: url`), username: creds.username!, password: creds.password! }
  }
  if (values.creds !== undefined && !mayWriteCreds) throw new Stop(EXIT.usage, `--creds: ${values.creds} does not exist (mk-pull --creds FILE writes it)`)
  const username = values.user ?? process.env.FIREHOSE_USER
  const password = process.env.FIREHOSE_PASSWORD
  if (username === undefined || username === '') throw new Stop(EXIT.usage, 'who: give --user NAME (or FIREHOSE_USER) and FIREHOSE_PASSWORD, or --creds FILE')
  if (password === undefined) throw new Stop(EXIT.usage, '--user: set the password in FIREHOSE_PASSWORD (never on the command line)')
  return { base: brokerUrl(values.url ?? process.env.FIREHOSE_URL ?? 'http://127.0.0.1'), username, password }
}

async function call (c: Connection, method: string, to: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
  return await request(new URL(to, c.base), {
    method,
    headers: { authorization: basicAuth(c.username, c.password), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(signal === undefined ? {} : { signal })
  })
}

function whole (values: Values, key: 'ack-deadline' | 'max-deliveries' | 'max' | 'count'): number | undefined {
  const text = values[key]
  if (text === undefined) return undefined
  if (!/^\d+$/.test(text)) throw new Stop(EXIT.usage, `--${key}: ${JSON.stringify(text)} is not a whole number`)
  return Number(text)
}

/** "now", "earliest", an offset, or a date as the API takes it. */
const startValue = (text: string): string | number => /^\d+$/.test(text) && Number(text) < 1e12 ? Number(text) : text

/** mk-pull, or mk-push with its endpoint: prints the subscription (a push one's secret included: it is shown this once). */
async function make (name: string, values: Values, endpoint?: string): Promise<void> {
  const action = endpoint === undefined ? 'mk-pull' : 'mk-push'
  if (values.topic === undefined) throw new Stop(EXIT.usage, `${action}: at least one --topic FILTER is needed`)
  if (values.format !== undefined && values.format !== 'pubsub' && values.format !== 'cloudevents') throw new Stop(EXIT.usage, `--format: "${values.format}" is not pubsub or cloudevents`)
  const c = await connection(values, true)
  const ackDeadline = whole(values, 'ack-deadline')
  const maxDeliveries = whole(values, 'max-deliveries')
  const created = await (await call(c, 'POST', '/v1/subscriptions', {
    name,
    topics: values.topic,
    type: endpoint === undefined ? 'pull' : 'push',
    ...(endpoint === undefined ? {} : { push: { endpoint, ...(values.audience === undefined ? {} : { audience: values.audience }), ...(values.format === undefined ? {} : { format: values.format }) } }),
    ...(ackDeadline === undefined ? {} : { ackDeadline }),
    ...(maxDeliveries === undefined ? {} : { maxDeliveries }),
    ...(values.ordered === true ? { ordered: true } : {}),
    ...(values['start-at'] === undefined ? {} : { startAt: startValue(values['start-at']) })
  })).json() as { name: string }
  if (values.creds !== undefined && !existsSync(values.creds)) {
    const creds: Creds = { url: c.base.href, username: c.username, password: c.password }
    // a password inside: readable by its owner only, and never written over
    await writeFile(values.creds, `${JSON.stringify(creds, null, 2)}\n`, { mode: 0o600, flag: 'wx' })
  }
  await write(`${JSON.stringify(created)}\n`)
}

async function list (c: Connection): Promise<void> {
  const { subscriptions } = await (await call(c, 'GET', '/v1/subscriptions')).json() as { subscriptions: Array<Record<string, unknown>> }
  for (const s of subscriptions) {
    await write(`${String(s.name)}\t${String(s.type)}\t${(s.topics as string[]).join(',')}\towner=${String(s.owner)}\toutstanding=${String(s.outstanding)}\tdead-letters=${String(s.deadLetters)}\n`)
  }
}

async function seek (name: string, values: Values): Promise<void> {
  if (values.to === undefined) throw new Stop(EXIT.usage, 'seek: --to DATETIME|OFFSET|earliest|now is needed')
  const result = await (await call(await connection(values), 'POST', path(name, '/seek'), { to: startValue(values.to) })).json() as { next: number }
  await write(`${name}: next offset ${result.next}\n`)
}

/**
 * Pulls (waiting up to 30 s each time), prints each event as a JSON line and acks the batch
 * once it is printed; --count N stops after N events. A broker restart or a dropped connection
 * is waited out: what was printed and not acked comes back after its ack deadline.
 */
async function listen (name: string, values: Values): Promise<void> {
  const c = await connection(values)
  const max = whole(values, 'max') ?? 100
  const count = whole(values, 'count') ?? Infinity
  let printed = 0
  for (let attempt = 0; printed < count;) {
    try {
      const want = Math.min(max, count - printed)
      const batch = await (await call(c, 'POST', path(name, '/pull'), { max: want, waitSeconds: 30 })).json() as Array<{ ackId: string } & Record<string, unknown>>
      attempt = 0
      if (batch.length === 0) continue
      for (const { ackId: _ackId, ...event } of batch) await write(`${JSON.stringify(event)}\n`)
      printed += batch.length
      await call(c, 'POST', path(name, '/ack'), { ackIds: batch.map(m => m.ackId) })
    } catch (err) {
      if (err instanceof Stop && err.code === EXIT.usage) throw err
      process.stderr.write(`firehose subscriptions: ${(err as Error).message}; trying again\n`)
      await sleep(Math.min(30_000, 500 * 2 ** Math.min(attempt++, 6)))
    }
  }
}
