import { defineBridge } from '@firehose/bridge-kit'
import { gerritSchema } from './config.js'
import { EventsLogClient } from './events-log.js'
import { GerritStreamSource } from './stream-source.js'

/** `firehose bridge gerrit --config FILE`: Gerrit stream-events over SSH -> gerrit/<project>/<event-type>. */
export const gerritBridge = defineBridge({
  name: 'gerrit',
  section: 'gerrit',
  schema: gerritSchema,
  createSource: async (gerrit, { path, readFile, secret, backoff }) => {
    const resolved = { ...gerrit, privateKey: path(gerrit.privateKey), knownHosts: path(gerrit.knownHosts) }
    const privateKey = await readFile('gerrit.privateKey', resolved.privateKey)
    await readFile('gerrit.knownHosts', resolved.knownHosts)
    const log = gerrit.eventsLog
    const eventsLog = log === undefined
      ? undefined
      : new EventsLogClient({ url: log.url, username: log.username, password: await secret('gerrit.eventsLog', 'password', log.password, log.passwordFile) })
    return new GerritStreamSource({ gerrit: resolved, privateKey, ...(eventsLog === undefined ? {} : { eventsLog }), backoff })
  }
})
