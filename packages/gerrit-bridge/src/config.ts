import { z } from 'zod'

/** The `gerrit:` section of the bridge's config file. */
export const gerritSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(29418),
  username: z.string().min(1),
  /** private key file for SSH key authentication */
  privateKey: z.string().min(1),
  passphrase: z.string().optional(),
  /** OpenSSH known_hosts file: the server's key must be there (strict host-key checking) */
  knownHosts: z.string().min(1),
  /** only these event types (`gerrit stream-events -s TYPE`); all when empty */
  eventTypes: z.array(z.string().regex(/^[a-z0-9-]+$/, 'an event type such as comment-added')).default([]),
  /** seconds between SSH keepalives, and how many may go unanswered before the link is dead */
  keepaliveInterval: z.number().positive().default(15),
  keepaliveCountMax: z.number().int().min(1).default(3),
  /** topics are <topicBase>/<project>/<event-type> */
  topicBase: z.string().min(1).regex(/^[^#+]+$/, 'no wildcards').default('gerrit'),
  /** the events-log plugin's REST API, to fill gaps after a disconnect */
  eventsLog: z.strictObject({
    url: z.string().regex(/^https?:\/\/\S+$/, 'expected http(s)://HOST[:PORT][/PATH]'),
    username: z.string().min(1),
    password: z.string().optional(),
    passwordFile: z.string().min(1).optional(),
    /** seconds before the last event to ask from: clocks and second granularity */
    overlap: z.number().min(0).default(60),
    /** seconds to let the new stream settle before asking, so nothing falls between the two */
    settle: z.number().min(0).default(2)
  }).optional()
})

export type GerritConfig = z.output<typeof gerritSchema>
