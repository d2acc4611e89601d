import { defineBridge } from '@firehose/bridge-kit'
import { imapSchema } from './config.js'
import { MailboxSource } from './mailbox-source.js'

/** `firehose bridge launchpad --config FILE`: Launchpad bug mail over IMAP -> launchpad/<project>/<event-type>/<bug>. */
export const launchpadBridge = defineBridge({
  name: 'launchpad',
  section: 'imap',
  schema: imapSchema,
  createSource: async (imap, { readFile, secret, backoff }) => {
    const password = await secret('imap', 'password', imap.password, imap.passwordFile)
    const ca = imap.ca === undefined ? undefined : await readFile('imap.ca', imap.ca)
    return new MailboxSource({ imap, password, ...(ca === undefined ? {} : { ca }), backoff })
  }
})
