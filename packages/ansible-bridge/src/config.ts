import { z } from 'zod'

/** The `ansible:` section of the receiver's config file. */
export const ansibleSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(9885)
  }).prefault({}),
  /** the bearer token the plugin sends; give token or tokenFile */
  token: z.string().min(16, 'at least 16 characters').optional(),
  tokenFile: z.string().min(1).optional(),
  /** HTTPS for the receiver (optional) */
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /** largest request body accepted, in bytes */
  maxBodyBytes: z.number().int().min(1024).default(1048576),
  /** topics are <topicBase>/playbook/<uuid>/... */
  topicBase: z.string().min(1).regex(/^[^#+]+$/, 'no wildcards').default('ansible')
})

export type AnsibleConfig = z.output<typeof ansibleSchema>
