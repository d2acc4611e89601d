/** The broker's MQTT port is not known to a page served on its WebSocket port: Firehose's default. */
export const MQTT_PORT = 1883

const shellQuote = text => `'${text.replaceAll("'", "'\\''")}'`

/**
 * The current filter as terminal commands: mosquitto_sub over MQTT and curl over the history
 * API's Server-Sent Events, against the host the page came from. A logged-in user's name is in
 * them; the password is left to $FIREHOSE_PASSWORD.
 */
export function commandsFor (filter, page, username) {
  // an IPv6 literal is [::1] in a URL, ::1 to mosquitto_sub
  const host = page.hostname.replace(/^\[(.*)\]$/, '$1')
  const mqttUser = username === undefined ? '' : ` -u ${shellQuote(username)} -P "$FIREHOSE_PASSWORD"`
  const httpUser = username === undefined ? '' : ` -u ${shellQuote(`${username}:`)}"$FIREHOSE_PASSWORD"`
  return {
    mqtt: `mosquitto_sub -h ${host} -p ${MQTT_PORT}${mqttUser} -t ${shellQuote(filter)} -v`,
    http: `curl -N${httpUser} ${shellQuote(`${page.origin}/v1/events?topic=${encodeURIComponent(filter).replaceAll('%2F', '/')}`)}`
  }
}
