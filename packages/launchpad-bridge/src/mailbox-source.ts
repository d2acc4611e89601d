import { ImapFlow } from 'imapflow'
import { keepReconnecting, type EventSink, type Source } from '@firehose/bridge-kit'
import type { ImapConfig } from './config.js'
import { parseMail } from './parse-mail.js'

/** how long after its last command the connection enters IDLE (imapflow waits 15 s by default) */
const AUTO_IDLE_DELAY_MS = 500

export interface MailboxSourceOptions {
  imap: ImapConfig
  password: string
  ca?: Buffer
  backoff: { initialMs: number, maxMs: number }
}

/**
 * Launchpad bug mail from an IMAP folder. It IDLEs, re-checks every `recheckInterval`
 * seconds in case a notification was missed, and reconnects with backoff (IMAP servers drop
 * idle connections routinely). A mail is marked processed — \Seen, moved or deleted — only
 * once the broker has acknowledged every message it produced; a crash before that re-reads
 * it, and the outbox's dedupe keys (its Message-ID) keep it from being published twice.
 */
export class MailboxSource implements Source {
  private client: ImapFlow | undefined
  private stopping = false
  private readonly stopSignal = new AbortController()
  private loop: Promise<void> | undefined
  /** other people's mail in the folder: left untouched, and not fetched again and again */
  private readonly ignored = new Set<string>()

  constructor (private readonly options: MailboxSourceOptions) {}

  start (sink: EventSink): void {
    this.loop = this.run(sink)
  }

  async stop (): Promise<void> {
    this.stopping = true
    this.stopSignal.abort()
    await this.client?.logout().catch(() => {})
    await this.loop
  }

  private async run (sink: EventSink): Promise<void> {
    const { imap } = this.options
    const source = `${imap.host}:${imap.port ?? (imap.security === 'tls' ? 993 : 143)}/${imap.folder}`
    await keepReconnecting({
      backoff: this.options.backoff,
      signal: this.stopSignal.signal,
      attempt: async (_attempt, connected) => {
        const client = await this.connect(sink)
        connected()
        sink.sourceState('connected', { source })
        sink.logger.info({ event: 'launchpad.watching', source }, 'watching the mailbox')
        await this.watch(client, sink)
      },
      retrying: ({ failure }) => {
        if (failure !== undefined) sink.logger.warn({ event: 'launchpad.mailbox-lost', source, err: failure.message }, 'mailbox connection lost')
        sink.sourceState('reconnecting', { source, ...(failure === undefined ? {} : { error: failure.message }) })
      }
    })
  }

  private async connect (sink: EventSink): Promise<ImapFlow> {
    const { imap } = this.options
    const client = new ImapFlow({
      host: imap.host,
      port: imap.port ?? (imap.security === 'tls' ? 993 : 143),
      secure: imap.security === 'tls',
      doSTARTTLS: imap.security === 'starttls',
      auth: { user: imap.username, pass: this.options.password },
      ...(this.options.ca === undefined ? {} : { tls: { ca: this.options.ca } }),
      logger: false,
      maxIdleTime: 5 * 60 * 1000, // re-issue IDLE before servers and middleboxes time it out
      // enter IDLE half a second after the last command, not imapflow's 15 s: mail delivered
      // meanwhile would wait for the re-check
      autoIdleDelay: AUTO_IDLE_DELAY_MS
    })
    client.on('error', err => sink.logger.warn({ err: (err as Error).message }, 'IMAP error'))
    this.client = client
    await client.connect()
    return client
  }

  /** Processes what is there, then on every new-mail notification and every recheck, until the connection closes. */
  private async watch (client: ImapFlow, sink: EventSink): Promise<void> {
    const { imap } = this.options
    const mailbox = await client.mailboxOpen(imap.folder)
    const validity = String(mailbox.uidValidity)
    let wake: (() => void) | undefined
    // closed, and whether new mail was announced while a batch was being processed (then the
    // batch is followed by another at once: entering IDLE again announces nothing)
    const connection = { closed: false, notified: false }
    const notify = (): void => {
      connection.notified = true
      wake?.()
      wake = undefined
    }
    client.on('exists', notify)
    client.on('close', () => { connection.closed = true; notify() })
    const timer = setInterval(notify, imap.recheckInterval * 1000)
    try {
      while (!connection.closed && !this.stopping) {
        connection.notified = false
        await this.processAll(client, sink, validity)
        if (connection.closed || this.stopping) break
        if (!connection.notified) await new Promise<void>(resolve => { wake = resolve })
      }
    } finally {
      clearInterval(timer)
    }
    if (!this.stopping) throw new Error('the IMAP connection closed')
  }

  private async processAll (client: ImapFlow, sink: EventSink, validity: string): Promise<void> {
    const { imap } = this.options
    const criteria = imap.processed.action === 'seen' ? { seen: false } : { all: true }
    const uids = ((await client.search(criteria, { uid: true })) || []).filter(uid => !this.ignored.has(`${validity}:${uid}`))
    const sizes = await this.sizes(client, uids)
    for (const uid of uids) {
      if (this.stopping) return
      const id = `${validity}:${uid}`
      const size = sizes.get(uid)
      if (size !== undefined && size > imap.maxMailBytes) {
        await this.refuseLarge(client, sink, uid, id, size)
        continue
      }
      const message = await client.fetchOne(String(uid), { source: true }, { uid: true })
      if (message === false || message.source === undefined) continue
      const verdict = await parseMail(message.source, imap.topicBase)
      if (verdict.kind === 'other') {
        this.ignored.add(id)
        sink.logger.debug({ event: 'launchpad.other-mail', uid }, 'not Launchpad mail: left untouched')
        continue
      }
      if (verdict.kind === 'failed') {
        sink.reject('unparseable-mail', { uid, messageId: verdict.messageId, why: verdict.reason, folder: imap.failedFolder })
        await this.ensureFolder(client, imap.failedFolder)
        await client.messageMove(String(uid), imap.failedFolder, { uid: true })
        continue
      }
      let published = 0
      for (const m of verdict.messages) {
        if (await sink.accept({ topic: m.topic, payload: Buffer.from(JSON.stringify(m.payload)) }, m.key) === 'queued') published++
      }
      // only once the broker has every message of this mail is the mail marked processed
      await sink.flushed()
      await this.markProcessed(client, uid)
      sink.logger.info({ event: 'launchpad.published', uid, messageId: verdict.messageId, topics: verdict.messages.map(m => m.topic), published }, 'bug mail published')
    }
  }

  /** Each mail's size (RFC822.SIZE), in one command: a mail over maxMailBytes is never fetched whole. */
  private async sizes (client: ImapFlow, uids: readonly number[]): Promise<Map<number, number>> {
    const sizes = new Map<number, number>()
    if (uids.length === 0) return sizes
    for await (const message of client.fetch(uids.join(','), { size: true }, { uid: true })) {
      if (message.size !== undefined) sizes.set(message.uid, message.size)
    }
    return sizes
  }

  /**
   * A mail over maxMailBytes: from its headers only, Launchpad's goes to failedFolder, logged
   * and counted; anyone else's is left alone, as other mail is.
   */
  private async refuseLarge (client: ImapFlow, sink: EventSink, uid: number, id: string, size: number): Promise<void> {
    const { imap } = this.options
    const message = await client.fetchOne(String(uid), { headers: ['message-id', 'x-launchpad-notification-type', 'x-generated-by'] }, { uid: true })
    const headers = message === false || message.headers === undefined ? '' : message.headers.toString('utf8')
    if (!/^x-launchpad-notification-type:/im.test(headers) && !/^x-generated-by:.*launchpad/im.test(headers)) {
      this.ignored.add(id)
      sink.logger.debug({ event: 'launchpad.other-mail', uid, size }, 'not Launchpad mail (and over maxMailBytes): left untouched')
      return
    }
    const messageId = /^message-id:\s*(.+)$/im.exec(headers)?.[1]?.trim()
    sink.reject('mail-too-large', { uid, messageId, size, maxMailBytes: imap.maxMailBytes, folder: imap.failedFolder })
    await this.ensureFolder(client, imap.failedFolder)
    await client.messageMove(String(uid), imap.failedFolder, { uid: true })
  }

  private async markProcessed (client: ImapFlow, uid: number): Promise<void> {
    const { processed } = this.options.imap
    if (processed.action === 'seen') await client.messageFlagsAdd(String(uid), ['\\Seen'], { uid: true })
    else if (processed.action === 'delete') await client.messageDelete(String(uid), { uid: true })
    else {
      await this.ensureFolder(client, processed.folder)
      await client.messageMove(String(uid), processed.folder, { uid: true })
    }
  }

  private async ensureFolder (client: ImapFlow, folder: string): Promise<void> {
    const existing = await client.list()
    if (!existing.some(m => m.path === folder)) await client.mailboxCreate(folder)
  }
}
