import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from 'yaml'
import t from 'tap'
import { ansibleBridge } from '@firehose/ansible-bridge'
import { parseConfig } from '@firehose/broker'
import { formatZodIssues } from '@firehose/runtime'
import { gerritBridge } from '@firehose/gerrit-bridge'
import { launchpadBridge } from '@firehose/launchpad-bridge'
import { REPO } from './helpers/repo.js'

// The example configs in deploy/ are what operators copy: each must pass the bridge's own schema.

for (const bridge of [gerritBridge, launchpadBridge, ansibleBridge]) {
  const file = `${bridge.name}-bridge.example.yaml`
  t.test(file, async t => {
    const data: unknown = parse(await readFile(join(REPO, 'deploy', file), 'utf8'))
    const result = bridge.configSchema.safeParse(data)
    t.same(result.success ? [] : formatZodIssues(result.error.issues), [], 'valid')
  })
}

for (const file of ['firehose.example.yaml', 'cluster/firehose.yaml']) {
  t.test(file, async t => {
    const path = join(REPO, 'deploy', file)
    const config = parseConfig(await readFile(path, 'utf8'), { source: path, baseDir: join(REPO, 'deploy'), env: {} })
    t.ok(config.listeners.length === 4, 'four listeners')
    if (file.startsWith('cluster/')) t.match(config.cluster, { redis: 'redis://redis:6379', heartbeatInterval: 5 }, 'a cluster node')
    else t.equal(config.cluster, false, 'a single node by default')
  })
}
