import { join } from 'node:path'
import t from 'tap'
import { ConfigError } from '@firehose/runtime'
import { parseConfig } from '../src/config/load.js'

const parse = (yaml: string | undefined, env: NodeJS.ProcessEnv = {}) => parseConfig(yaml, { source: 'test.yaml', baseDir: '/etc/firehose', env })

function problemsOf (fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  throw new Error('expected a ConfigError')
}

t.test('no file: four default listeners, persistence, admin on loopback', async t => {
  const c = parse(undefined)
  t.same(c.listeners.map(l => [l.name, l.protocol, l.tls !== undefined]), [
    ['mqtt:1883', 'mqtt', false], ['mqtts:8883', 'mqtt', true], ['ws:80', 'websockets', false], ['wss:8080', 'websockets', true]
  ])
  t.equal(c.listeners[1]!.tls!.cert, '/etc/firehose/certs/dev/server.crt')
  t.same(c.persistence, { dir: '/etc/firehose/data' })
  t.same(c.admin, { host: '127.0.0.1', port: 9883 })
  t.equal(c.sysInterval, 10)
  t.equal(c.limits.maxTopicLevels, 100)
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.listeners[0]) && Object.isFrozen(c.limits), 'frozen')
})

t.test('environment variables rebind, disable and add listeners', async t => {
  const c = parse(undefined, { FIREHOSE_MQTT_PORT: '11883', FIREHOSE_WS_PORT: 'off', FIREHOSE_ADMIN_PORT: 'off', FIREHOSE_DATA_DIR: '/var/lib/firehose' })
  t.same(c.listeners.map(l => l.name), ['mqtt:11883', 'mqtts:8883', 'wss:8080'])
  t.equal(c.admin, false)
  t.same(c.persistence, { dir: '/var/lib/firehose' })
  const only = parse('listeners:\n  - { port: 1884, protocol: mqtt }\n', { FIREHOSE_WS_PORT: '8000' })
  t.same(only.listeners.map(l => l.name), ['mqtt:1884', 'ws:8000'])
  t.match(problemsOf(() => parse(undefined, { FIREHOSE_WSS_PORT: '99999' })), [/FIREHOSE_WSS_PORT: "99999" is not a port/])
})

t.test('paths are relative to the config file', async t => {
  const c = parse('passwordFile: passwd\naclFile: /abs/acl\npersistence: { dir: state }\nlisteners:\n  - { port: 8883, protocol: mqtt, tls: { cert: tls/a.crt, key: tls/a.key, ca: tls/ca.crt } }\n')
  t.equal(c.passwordFile, '/etc/firehose/passwd')
  t.equal(c.aclFile, '/abs/acl')
  t.same(c.persistence, { dir: '/etc/firehose/state' })
  t.same(c.listeners[0]!.tls, { cert: '/etc/firehose/tls/a.crt', key: '/etc/firehose/tls/a.key', ca: '/etc/firehose/tls/ca.crt' })
})

t.test('every problem is reported at once, each naming its key', async t => {
  const problems = problemsOf(() => parse('listeners:\n  - { port: -1, protocol: mqtt }\n  - { port: 2, protocol: ws }\nsysInterval: x\nsurprise: 1\n'))
  t.ok(problems.some(p => p.startsWith('listeners[0].port: ')), problems.join('; '))
  t.ok(problems.some(p => p.startsWith('listeners[1].protocol: ')), problems.join('; '))
  t.ok(problems.some(p => p.startsWith('sysInterval: ')), problems.join('; '))
  t.ok(problems.some(p => p === '(top level): unknown key "surprise"'), problems.join('; '))
})

t.test('duplicate ports, bad YAML, duplicate keys', async t => {
  t.match(problemsOf(() => parse('listeners:\n  - { port: 1883, protocol: mqtt }\n  - { port: 1883, protocol: websockets }\n')), [/listeners\[1\]\.port: 1883 is used by another listener/])
  t.match(problemsOf(() => parse('listeners: [')), [/^YAML: /])
  t.match(problemsOf(() => parse('sysInterval: 1\nsysInterval: 2\n')), [/^YAML: .*[Uu]nique|^YAML: .*duplicate|^YAML: /])
  t.match(problemsOf(() => parse('limits:\n  maxTopicLevels: 500\n')), [/^limits\.maxTopicLevels: /])
})

t.test('cluster: off by default, from the file or the environment, validated', async t => {
  t.equal(parse(undefined).cluster, false)
  const fromFile = parse('cluster:\n  redis: redis://10.0.0.5:6379/0\n  node: fh-1\n  passwordFile: redis-password\n')
  t.same(fromFile.cluster, { redis: 'redis://10.0.0.5:6379/0', node: 'fh-1', passwordFile: '/etc/firehose/redis-password', heartbeatInterval: 5 })
  t.equal(fromFile.persistence, false, 'no LevelDB store on a cluster node')
  const fromEnv = parse(undefined, { FIREHOSE_REDIS_URL: 'rediss://redis.example.org:6380', FIREHOSE_NODE: 'fh-2' })
  t.match(fromEnv.cluster, { redis: 'rediss://redis.example.org:6380', node: 'fh-2' })
  const problems = (yaml: string | undefined, env: NodeJS.ProcessEnv = {}): string => {
    try {
      parse(yaml, env)
    } catch (err) {
      if (err instanceof ConfigError) return err.message
      throw err
    }
    return ''
  }
  t.match(problems('cluster:\n  redis: http://x\n'), /cluster\.redis: expected a redis:\/\/ or rediss:\/\/ URL/)
  t.match(problems('cluster:\n  redis: redis://x\n  node: "a b"\n'), /cluster\.node: /)
  t.match(problems('cluster:\n  redis: redis://x\n  heartbeatInterval: 0\n'), /cluster\.heartbeatInterval: /)
  t.match(problems('cluster:\n  redis: redis://x\npersistence:\n  dir: /var/lib/firehose\n'), /persistence: a cluster node keeps its state in Redis/)
  t.match(problems(undefined, { FIREHOSE_NODE: 'fh-1' }), /FIREHOSE_NODE: names a cluster node, but there is no cluster/)
  t.match(problems(undefined, { FIREHOSE_REDIS_URL: 'localhost:6379' }), /FIREHOSE_REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL/)
  t.match(problems(undefined, { FIREHOSE_REDIS_URL: 'redis://x', FIREHOSE_NODE: 'a/b' }), /FIREHOSE_NODE: "a\/b" is not a node name/)
})

t.test('journal: on by default inside the data directory, durations and sizes with units, validated', async t => {
  const c = parse(undefined)
  t.same(c.journal, { dir: join(c.persistence === false ? '' : c.persistence.dir, 'journal'), topics: ['#'], retention: { maxAgeMs: 7 * 86_400_000, maxBytes: 1024 ** 3 } })
  const set = parse('journal:\n  dir: history\n  topics: [gerrit/#, launchpad/#]\n  retention: { maxAge: 12h, maxBytes: 512MiB }\n')
  t.same(set.journal, { dir: join('/etc/firehose', 'history'), topics: ['gerrit/#', 'launchpad/#'], retention: { maxAgeMs: 12 * 3_600_000, maxBytes: 512 * 1024 ** 2 } })
  const seconds = parse('journal: { retention: { maxAge: 90 } }\n').journal
  t.equal(seconds === false ? undefined : seconds.retention.maxAgeMs, 90_000, 'a number is seconds')
  t.equal(parse('journal: false\n').journal, false)
  t.equal(parse('persistence: false\n').journal, false, 'no persistence and no journal.dir: no journal')
  t.match(problemsOf(() => parse('journal:\n  topics: [a/#/b]\n  retention: { maxAge: soon, maxBytes: lots }\n')), [
    /journal\.topics\[0\]: "a\/#\/b" is not an MQTT topic filter/,
    /journal\.retention\.maxAge: "soon" is not a duration/,
    /journal\.retention\.maxBytes: "lots" is not a size/
  ])
})

t.test('subscriptions: on wherever there is a journal and a disk, off on cluster nodes, and said so when asked for there', async t => {
  const c = parse(undefined)
  const data = c.persistence === false ? '' : c.persistence.dir
  t.same(c.subscriptions, {
    dir: join(data, 'subscriptions'),
    admins: [],
    push: { issuer: 'firehose', keys: [], allowedEndpoints: ['https://*'], retryScheduleMs: [10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 28800].map(s => s * 1000), concurrency: 4, timeoutMs: 30_000, defaultKeyFile: join(data, 'push-signing-key.pem') }
  })
  t.match(parse('subscriptions: { dir: subs, admins: [root] }\n').subscriptions, { dir: join('/etc/firehose', 'subs'), admins: ['root'] })
  t.match(parse('subscriptions:\n  push: { keys: [{ file: k.pem, kid: k1 }], retrySchedule: [1, 2s], timeout: 5s }\n').subscriptions, { push: { keys: [{ file: join('/etc/firehose', 'k.pem'), kid: 'k1' }], retryScheduleMs: [1000, 2000], timeoutMs: 5000 } })
  t.match(parse('subscriptions: { push: false }\n').subscriptions, { push: false })
  t.match(problemsOf(() => parse('subscriptions:\n  push: { retrySchedule: [soon], timeout: never, allowedEndpoints: [ftp://x] }\n')), [
    /subscriptions\.push\.retrySchedule\[0\]: "soon" is not a duration/,
    /subscriptions\.push\.timeout: "never" is not a duration/,
    /subscriptions\.push\.allowedEndpoints\[0\]: "ftp:\/\/x" is not an http:\/\/ or https:\/\/ URL pattern/
  ])
  t.equal(parse('subscriptions: false\n').subscriptions, false)
  t.equal(parse('journal: false\n').subscriptions, false, 'no journal: nothing to read')
  t.match(parse('cluster: { redis: redis://127.0.0.1:6379 }\n').subscriptions, { dir: undefined, admins: [], push: { defaultKeyFile: undefined } }, 'on a cluster node: in Redis, with the cluster\'s signing key')
  t.match(parse('cluster: { redis: redis://127.0.0.1:6379 }\nsubscriptions: { admins: [root] }\n').subscriptions, { dir: undefined, admins: ['root'] })
  t.match(problemsOf(() => parse('cluster: { redis: redis://127.0.0.1:6379 }\nsubscriptions: { dir: subs }\n')), [/subscriptions\.dir: a cluster node keeps its subscriptions in Redis/])
  t.match(problemsOf(() => parse('journal: false\nsubscriptions: {}\n')), [/subscriptions: they read the journal, and this broker keeps none/])
  t.match(problemsOf(() => parse('persistence: false\njournal: { dir: j }\nsubscriptions: {}\n')), [/subscriptions\.dir: needed when persistence is false/])
  t.match(problemsOf(() => parse('subscriptions: { admins: root }\n')), [/subscriptions\.admins: /])
})

t.test('eventSync: rules checked at load, each problem naming its key; on by default where there is a journal on disk', async t => {
  const c = parse(undefined)
  t.match(c.eventSync, { dir: join('/etc/firehose', 'data', 'event-sync'), rules: [] }, 'no rules yet: the API can make some')
  const rule = 'eventSync:\n  - name: nightly\n    trigger: { type: window, observationPeriod: 1h }\n    endpoints: [{ eventKey: merge, topic: gerrit/+/change-merged }, { eventKey: deploy }]\n'
  const withRule = parse(rule)
  t.match(withRule.eventSync, { rules: [{ name: 'nightly', trigger: { observationPeriodMs: 3_600_000 }, target: { topic: 'eventsync/nightly' } }] })
  t.equal(parse('eventSync: false\n').eventSync, false)
  t.equal(parse('journal: false\n').eventSync, false)
  t.match(problemsOf(() => parse('journal: false\n' + rule)), [/^eventSync: its rules read the journal, and this broker keeps none/])
  t.match(parse('cluster: { redis: redis://127.0.0.1:6379 }\n' + rule).eventSync, { dir: undefined, rules: [{ name: 'nightly' }] }, 'on a cluster node: in Redis')
  t.match(problemsOf(() => parse('journal: { topics: [gerrit/#] }\n' + rule)), [/^eventSync\[0\]: the journal does not keep eventsync\/nightly\/trigger \(journal\.topics: gerrit\/#\)/])
  t.match(problemsOf(() => parse('journal: { topics: [eventsync/#, gerrit/nova/#] }\n' + rule)), [/^eventSync\[0\]\.endpoints\[0\]\.topic: the journal does not keep all of gerrit\/\+\/change-merged/])
  t.match(problemsOf(() => parse('journal: { retention: { maxAge: 30m } }\n' + rule)), [/^eventSync\[0\]\.trigger\.observationPeriod: 3600 s is longer than the journal keeps events \(journal\.retention\.maxAge: 1800 s\)/])
  t.match(problemsOf(() => parse('eventSync:\n  - name: x\n    trigger: { type: window, observationPeriod: 0 }\n    endpoints: [{ eventKey: a }, { eventKey: a }]\n    condition: a && b\n')), [
    /^eventSync\[0\]\.trigger\.observationPeriod: 0 is not a duration above 0/,
    /^eventSync\[0\]\.endpoints\[1\]\.eventKey: "a" is also endpoints\[0\]'s/,
    /^eventSync\[0\]\.condition: "b" is not an event key of this rule \(a\) at column 6/
  ])
  t.match(problemsOf(() => parse('eventSync: { name: x }\n')), [/^eventSync: /])
})

t.test('limits: queued messages per offline session and session expiries, durations or never, validated', async t => {
  const c = parse(undefined)
  t.match(c.limits, { maxQueuedMessages: 1000, sessionExpiryMs: 86_400_000, userSessionExpiryMs: false })
  t.match(parse('limits: { maxQueuedMessages: 0, sessionExpiry: never, userSessionExpiry: 30d }\n').limits, { maxQueuedMessages: 0, sessionExpiryMs: false, userSessionExpiryMs: 30 * 86_400_000 })
  t.match(parse('limits: { sessionExpiry: 90 }\n').limits, { sessionExpiryMs: 90_000 }, 'a number is seconds')
  t.match(problemsOf(() => parse('limits: { maxQueuedMessages: -1 }\n')), [/limits\.maxQueuedMessages: /])
  t.match(problemsOf(() => parse('limits: { sessionExpiry: later, userSessionExpiry: soon }\n')), [
    /limits\.sessionExpiry: "later" is not a duration .*nor never/,
    /limits\.userSessionExpiry: "soon" is not a duration/
  ])
})
