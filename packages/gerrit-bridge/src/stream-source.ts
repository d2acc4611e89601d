import { readFile } from 'node:fs/promises'
import { Client, type ClientChannel } from 'ssh2'
import { keepReconnecting, sleep, type EventSink, type Source } from '@firehose/bridge-kit'
import { streamEventsCommand } from './command.js'
import { dedupeKey } from './dedupe-key.js'
import type { EventsLogClient } from './events-log.js'
import { checkHostKey, parseKnownHosts } from './known-hosts.js'
import { topicFor, type GerritEvent } from './topic.js'
import type { GerritConfig } from './config.js'

const LAST_EVENT = 'gerrit.lastEventCreatedOn'
/** lines buffered from the stream before it is paused (the outbox is slower, or a gap fill runs) */
const HIGH_WATER = 1000

export interface StreamSourceOptions {
  gerrit: GerritConfig
  privateKey: Buffer
  eventsLog?: EventsLogClient
  backoff: { initialMs: number, maxMs: number }
}

/**
 * `gerrit stream-events` over SSH. On every connection after the first it fills the gap
 * since the last event from the events-log plugin before passing on live events, so order
 * holds; dedupe keys drop what both the log and the stream deliver.
 */
export class GerritStreamSource implements Source {
  private sink: EventSink | undefined
  private conn: Client | undefined
  private stopping = false
  private readonly stopSignal = new AbortController()
  private loop: Promise<void> | undefined
  private lastEventCreatedOn: number | undefined

  constructor (private readonly options: StreamSourceOptions) {}

  start (sink: EventSink): void {
    this.sink = sink
    this.loop = this.run(sink)
  }

  async stop (): Promise<void> {
    this.stopping = true
    this.stopSignal.abort()
    this.conn?.end()
    await this.loop
  }

  private get command (): string {
    return streamEventsCommand(this.options.gerrit.eventTypes)
  }

  private async run (sink: EventSink): Promise<void> {
    const { gerrit } = this.options
    const source = `${gerrit.host}:${gerrit.port}`
    const stored = await sink.getMeta(LAST_EVENT)
    this.lastEventCreatedOn = stored === undefined ? undefined : Number(stored)
    let streamEndedAt: Date | undefined = this.lastEventCreatedOn === undefined ? undefined : new Date()
    await keepReconnecting({
      backoff: this.options.backoff,
      signal: this.stopSignal.signal,
      attempt: async (_attempt, connected) => {
        try {
          const channel = await this.open()
          connected()
          sink.sourceState('connected', { source })
          sink.logger.info({ event: 'gerrit.streaming', host: gerrit.host, port: gerrit.port, command: this.command }, 'streaming Gerrit events')
          await this.consume(channel, sink, streamEndedAt)
          streamEndedAt = new Date()
        } catch (err) {
          streamEndedAt ??= new Date()
          throw err
        } finally {
          this.conn?.end()
        }
      },
      retrying: ({ failure }) => {
        if (failure === undefined) sink.logger.warn({ event: 'gerrit.stream-ended', host: gerrit.host }, 'Gerrit stream ended: reconnecting')
        else sink.logger.error({ event: 'gerrit.stream-failed', host: gerrit.host, port: gerrit.port, err: failure.message }, 'cannot stream Gerrit events')
        sink.sourceState('reconnecting', { source, ...(failure === undefined ? {} : { error: failure.message }) })
      }
    })
  }

  /** Connects, checks the host key strictly, and starts stream-events. */
  private async open (): Promise<ClientChannel> {
    const { gerrit } = this.options
    const knownHosts = parseKnownHosts(await readFile(gerrit.knownHosts, 'utf8')) // re-read: an operator may have fixed it
    const conn = new Client()
    this.conn = conn
    let refusal: string | null = null
    await new Promise<void>((resolve, reject) => {
      conn.once('ready', () => resolve())
      conn.once('error', err => reject(refusal !== null ? new Error(refusal) : err))
      conn.once('close', () => reject(new Error(refusal ?? 'connection closed during the handshake')))
      conn.connect({
        host: gerrit.host,
        port: gerrit.port,
        username: gerrit.username,
        privateKey: this.options.privateKey,
        ...(gerrit.passphrase === undefined ? {} : { passphrase: gerrit.passphrase }),
        hostVerifier: (key: Buffer) => {
          refusal = checkHostKey(knownHosts, gerrit.host, gerrit.port, key)
          return refusal === null
        },
        keepaliveInterval: gerrit.keepaliveInterval * 1000,
        keepaliveCountMax: gerrit.keepaliveCountMax,
        readyTimeout: 20000
      })
    })
    // after the handshake: a keepalive timeout or a reset ends the stream; never an uncaught error
    conn.on('error', err => this.sink?.logger.warn({ host: gerrit.host, err: err.message }, 'SSH connection lost'))
    return await new Promise<ClientChannel>((resolve, reject) => {
      conn.exec(this.command, (err, channel) => err ? reject(err) : resolve(channel))
    })
  }

  /** Reads lines until the channel closes; a gap is filled first, live lines held back meanwhile. */
  private async consume (channel: ClientChannel, sink: EventSink, gapFrom: Date | undefined): Promise<void> {
    const queue: string[] = []
    let partial = ''
    let ended = false
    let wake: (() => void) | undefined
    const notify = (): void => { wake?.(); wake = undefined }
    channel.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n')
      partial = lines.pop() ?? ''
      queue.push(...lines)
      if (queue.length > HIGH_WATER) channel.pause()
      notify()
    })
    channel.stderr.on('data', (chunk: Buffer) => sink.logger.warn({ stderr: chunk.toString('utf8').trim() }, 'Gerrit said'))
    channel.on('exit', (code: number | null) => { if (code !== 0 && code !== null) sink.logger.warn({ code }, 'stream-events exited') })
    channel.on('close', () => { ended = true; notify() })

    if (gapFrom !== undefined) await this.fillGap(sink, gapFrom)

    for (;;) {
      const line = queue.shift()
      if (line !== undefined) {
        if (queue.length < HIGH_WATER / 2 && channel.isPaused()) channel.resume()
        await this.handleLine(line, sink)
        continue
      }
      if (ended || this.stopping) return
      await new Promise<void>(resolve => { wake = resolve })
    }
  }

  private async fillGap (sink: EventSink, streamEndedAt: Date): Promise<void> {
    const from = this.lastEventCreatedOn === undefined ? streamEndedAt : new Date(this.lastEventCreatedOn * 1000)
    const client = this.options.eventsLog
    let unavailable = 'no eventsLog in the config'
    if (client !== undefined) {
      // The exec reply can come before the remote command listens for events: ask only once
      // the stream surely runs (live lines are held meanwhile), so no event falls between.
      await sleep((this.options.gerrit.eventsLog?.settle ?? 2) * 1000, this.stopSignal.signal)
    }
    const to = new Date()
    if (client !== undefined) {
      try {
        const overlap = (this.options.gerrit.eventsLog?.overlap ?? 60) * 1000
        const result = await client.since(new Date(from.getTime() - overlap))
        if ('lines' in result) {
          let published = 0
          for (const line of result.lines) {
            if (await this.handleLine(line, sink) === 'queued') published++
          }
          sink.logger.info({ event: 'gerrit.gap-filled', from: from.toISOString(), to: to.toISOString(), fetched: result.lines.length, published }, 'gap filled from the events-log plugin')
          sink.annotate({ gap: null })
          return
        }
        unavailable = result.unavailable
      } catch (err) {
        unavailable = `events-log failed: ${(err as Error).message}`
      }
    }
    const gap = { from: from.toISOString(), to: to.toISOString() }
    sink.logger.warn({ event: 'gerrit.gap-unfilled', gap, reason: unavailable }, 'events between these times may be missing: they could not be fetched')
    sink.annotate({ gap })
  }

  private async handleLine (line: string, sink: EventSink): Promise<'queued' | 'duplicate' | 'rejected'> {
    if (line.trim() === '') return 'rejected'
    let event: GerritEvent
    try {
      event = JSON.parse(line) as GerritEvent
    } catch {
      sink.reject('malformed-json', { line: line.slice(0, 200) })
      return 'rejected'
    }
    if (event === null || typeof event !== 'object' || Array.isArray(event)) {
      sink.reject('not-an-event', { line: line.slice(0, 200) })
      return 'rejected'
    }
    const topic = topicFor(event, this.options.gerrit.topicBase)
    if (topic === undefined) {
      sink.reject('no-event-type', { line: line.slice(0, 200) })
      return 'rejected'
    }
    const result = await sink.accept({ topic, payload: Buffer.from(line, 'utf8') }, dedupeKey(event, line))
    const created = event.eventCreatedOn
    if (typeof created === 'number' && (this.lastEventCreatedOn === undefined || created > this.lastEventCreatedOn)) {
      this.lastEventCreatedOn = created
      await sink.setMeta(LAST_EVENT, String(created))
    }
    return result
  }
}
