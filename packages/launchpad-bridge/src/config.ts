import { z } from 'zod'

/** The `imap:` section of the Launchpad bridge's config file. */
export const imapSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).optional(),
  /** tls: TLS from the start (993); starttls: upgrade (143); plain: none (loopback only, please) */
  security: z.enum(['tls', 'starttls', 'plain']).default('tls'),
  username: z.string().min(1),
  password: z.string().optional(),
  passwordFile: z.string().min(1).optional(),
  /** CA certificate for a server with a private CA */
  ca: z.string().min(1).optional(),
  folder: z.string().min(1).default('INBOX'),
  /** what marks a mail processed, once every message it produced is acknowledged */
  processed: z.strictObject({
    action: z.enum(['seen', 'move', 'delete']).default('seen'),
    /** for action: move */
    folder: z.string().min(1).default('Launchpad-Processed')
  }).prefault({}),
  /** Launchpad mail that cannot be parsed goes here */
  failedFolder: z.string().min(1).default('Launchpad-Failed'),
  /** a larger mail is not fetched: it goes to failedFolder (if Launchpad's), logged and counted */
  maxMailBytes: z.number().int().positive().default(10 * 1024 * 1024),
  /** seconds between re-checks of the folder, besides IDLE notifications */
  recheckInterval: z.number().positive().default(60),
  /** topics are <topicBase>/<project>/<event-type>/<bug-number> */
  topicBase: z.string().min(1).regex(/^[^#+]+$/, 'no wildcards').default('launchpad')
})

export type ImapConfig = z.output<typeof imapSchema>
