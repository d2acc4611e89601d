import { ENV_VARS } from '@firehose/broker'

export const MAIN_HELP = `Usage: firehose <command> [options]

Firehose: one MQTT bus for infrastructure events. Bridges publish; anyone may read.

Commands:
  broker [--config FILE]          run the broker (MQTT 1883, MQTT/TLS 8883, WebSocket 80, WebSocket/TLS 8080)
  passwd FILE USER                add a user to a password file, or change its password
  bridge gerrit --config FILE     run the Gerrit bridge (stream-events over SSH -> gerrit/<project>/<type>)
  bridge launchpad --config FILE  run the Launchpad bridge (bug mail over IMAP -> launchpad/<project>/...)
  bridge ansible --config FILE    run the Ansible receiver (callback plugin events -> ansible/playbook/...)
  history [--since S] [--follow]  print the broker's journal, one JSON event per line
  subscriptions ACTION ...        subscriptions: mk-pull, mk-push, ls, show, rm, seek, listen, enable
  help [COMMAND]                  show help for a command

Options:
  -h, --help                      show help
  -v, --version                   show the version

Exit codes: 0 ok; 2 bad configuration or usage (fix it before trying again); 1 any other
failure, including what may pass by itself: a port in use, a data or outbox directory locked
by another process, an unreachable Redis (systemd's RestartPreventExitStatus=2 retries these).
`

export function brokerHelp (): string {
  const env = Object.entries(ENV_VARS).map(([name, text]) => `  ${name.padEnd(22)} ${text}`).join('\n')
  return `Usage: firehose broker [--config FILE] [--check]

Runs the Firehose MQTT broker. Anonymous clients may subscribe to everything, $SYS/# included,
and publish nothing; users from the password file publish where the ACL file lets them.

Options:
  -c, --config FILE    YAML configuration (see deploy/firehose.example.yaml); without it the
                       defaults apply: listeners on 1883 (MQTT), 8883 (MQTT/TLS), 80 (WebSocket)
                       and 8080 (WebSocket/TLS) with certs/dev/server.{crt,key}, persistence in
                       ./data, the journal in ./data/journal (history over HTTP on the WebSocket
                       ports: /v1/events, /v1/history, /v1/stream), subscriptions in
                       ./data/subscriptions (/v1/subscriptions), admin HTTP (/metrics,
                       /healthz) on 127.0.0.1:9883
      --check          validate the configuration and the user and ACL files, then exit
  -h, --help           show this help

Environment (overrides the configuration):
${env}

Signals: SIGHUP reloads the password file, the ACL file, TLS certificates and the eventSync
rules of the configuration file without dropping connections; SIGTERM and SIGINT shut down
gracefully.
Exit codes: 0 stopped cleanly; 2 invalid configuration or usage; 1 any other failure,
including a port in use, a data directory locked by another broker, an unreachable Redis.
`
}

export const HISTORY_HELP = `Usage: firehose history [--topic FILTER]... [--since S] [--until S] [--follow] [--url URL] [--user NAME]

Prints the broker's journal of events, oldest first, one JSON object per line:
{ "offset", "timestamp", "topic", "payload" } (payload as JSON when it parses, else text;
"payloadBase64" instead for binary). The mosquitto_sub of history.

Options:
  -t, --topic FILTER   MQTT topic filter, repeatable (default: #, everything you may read)
  -s, --since S        start here, inclusive: an offset, a ms timestamp, or an ISO 8601 date
                       or date and time (without a zone: UTC), e.g. 2026-11-20T09:00
                       (default: the oldest event held; with --follow: only new events)
      --until S        stop before this offset or time (not with --follow)
  -f, --follow         keep printing events as they are published (Server-Sent Events);
                       resumes after the last one printed when the connection drops
      --url URL        the broker's WebSocket listener (default: FIREHOSE_URL or http://127.0.0.1,
                       port 80; https://HOST:8080 for TLS)
  -u, --user NAME      read as this broker user; the password comes from FIREHOSE_PASSWORD
  -h, --help           show this help

Exit codes: 0 done; 2 a bad option, or the broker refused the request (400, 401, 403);
1 the broker cannot be reached or failed.
`

export const SUBSCRIPTIONS_HELP = `Usage: firehose subscriptions ACTION [NAME] [options]

Subscriptions: named queues over the broker's journal, owned by the broker user who made them.
Pull: events are pulled, then acked; one not acked within its deadline comes back (at least
once), and after --max-deliveries goes to the subscription's dead letters. Push: the broker
POSTs each event to a URL, signed (a JWT, and Standard Webhooks headers), until it is answered 2xx.

Actions:
  mk-pull NAME --topic FILTER...   make a pull subscription (prints it as JSON)
      [--ack-deadline S]           seconds a pulled event waits for its ack (default 60)
      [--max-deliveries N]         deliveries before the dead letters (default 10)
      [--start-at WHEN]            now (default), earliest, an offset, or an ISO 8601 date
      [--ordered]                  one event in flight at a time, in journal order
      [--creds FILE]               also write FILE (mode 0600): the URL, user and password,
                                   for the other actions' --creds
  mk-push NAME URL --topic FILTER...
                                   make a push subscription to URL (prints it as JSON, with its
                                   "secret" for the webhook signature: shown this once)
      [--audience AUD]             the JWT's aud (default: URL)
      [--format pubsub|cloudevents]  the body's shape (default: pubsub)
      [--ordered] [--max-deliveries N] [--start-at WHEN]   as for mk-pull
  enable NAME                      push again after the endpoint answered 410 Gone
  ls                               your subscriptions (an admin's: everyone's), one per line
  show NAME                        one subscription, with its counters, as JSON
  rm NAME                          remove it, with what it holds
  seek NAME --to WHEN              go on from WHEN (an offset, an ISO 8601 date, earliest, now);
                                   what was pulled and not acked is forgotten
  listen NAME [--max N] [--count N]
                                   pull and print each event as a JSON line (offset, timestamp,
                                   topic, payload, delivery), acking a batch once printed;
                                   --count N stops after N events (default: run until stopped)

Connection:
      --creds FILE     JSON { "url", "username", "password" }, as mk-pull --creds writes it
      --url URL        the broker's WebSocket listener (default: FIREHOSE_URL or
                       http://127.0.0.1; https://HOST:8080 for TLS, as passwords go with it)
  -u, --user NAME      the broker user (default: FIREHOSE_USER); the password comes from
                       FIREHOSE_PASSWORD (never on the command line)
  -h, --help           show this help

Exit codes: 0 done; 2 a bad option, or the broker refused the request (400, 401, 403, 404,
409, 413); 1 the broker cannot be reached or failed.
`

export const PASSWD_HELP = `Usage: firehose passwd [--password-stdin] [--delete] FILE USER

Adds USER to the password file FILE, or changes its password, in Mosquitto's format
(PBKDF2-SHA512, "$7$", as mosquitto_passwd 2.x writes), so the file works with either broker.
The file is created (mode 0600) when missing. Send the broker SIGHUP to apply the change.

Options:
      --password-stdin  read the password from the first line of standard input
                        instead of prompting (for scripts)
  -D, --delete          remove USER from FILE
  -h, --help            show this help
`

export const BRIDGE_HELP = `Usage: firehose bridge <name> --config FILE
       firehose bridge ansible plugin-path

Runs a bridge: reads events from a source and publishes them to the broker through an on-disk
outbox, at QoS 2, so that nothing is lost or sent twice when the source, the broker or the
bridge restarts.

Bridges:
  gerrit    Gerrit stream-events over SSH -> <topicBase>/<project>/<event-type>
            (example config: deploy/gerrit-bridge.example.yaml)
  launchpad Launchpad bug mail over IMAP -> <topicBase>/<project>/<event-type>/<bug-number>
            (example config: deploy/launchpad-bridge.example.yaml)
  ansible   receives the Firehose callback plugin's events over HTTP(S)
            -> <topicBase>/playbook/<uuid>/... (example config: deploy/ansible-bridge.example.yaml);
            \`firehose bridge ansible plugin-path\` prints the directory for ANSIBLE_CALLBACK_PLUGINS

Options:
  -c, --config FILE    YAML configuration (required)
  -h, --help           show this help

The bridge publishes its health, retained, on firehose/bridges/<name>:
  { "state": "connected" | "reconnecting" | "stopped" | "offline", "since", "lastEventAt", "outboxDepth" }
Signals: SIGTERM and SIGINT stop reading the source, flush the outbox (up to 10 s) and exit.
Exit codes: 0 stopped cleanly; 2 invalid configuration or usage; 1 any other failure,
including an outbox directory locked by another bridge.
`
