// What an idle subscriber keeps on the broker's heap, by kind of object: two heap snapshots of a
// fresh Firehose broker (after `--warm` connections, then after `--count` more, each subscribed
// to one topic), compared per connection. Guided the idle-memory work of bench/README.md "Round 2".
//   npm run bench:idle-heap -- [--transport tcp|ws] [--count 5000] [--warm 200] [--top 30]
// Prints heap growth per connection, then per constructor (closures by name, V8's internal
// arrays as "(array)"), then what holds the internal arrays, by holder and property.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { openNativeSubscribers } from './lib/native.mjs'
import { startFirehose } from './lib/processes.mjs'

const { values } = parseArgs({
  options: {
    transport: { type: 'string', default: 'tcp' },
    count: { type: 'string', default: '5000' },
    warm: { type: 'string', default: '200' },
    top: { type: 'string', default: '30' }
  }
})
const COUNT = Number(values.count)
const TOP = Number(values.top)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const dir = await mkdtemp(join(tmpdir(), 'firehose-heap-'))
process.env.BENCH_BROKER_NODE_ARGS = `${process.env.BENCH_BROKER_NODE_ARGS ?? ''} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dir}`
const broker = await startFirehose({ users: { bench: 'bench-password' } })
const port = values.transport === 'ws' ? broker.wsPort : broker.port
const open = async (count, idPrefix) => await openNativeSubscribers({ port, transport: values.transport, count, filter: 'bench/idle', idPrefix })

/** Signals the broker to write a snapshot and waits until the file is complete. */
async function snapshot () {
  const before = (await readdir(dir)).length
  process.kill(broker.pid, 'SIGUSR2')
  for (;;) {
    await sleep(500)
    const files = (await readdir(dir)).filter(f => f.endsWith('.heapsnapshot')).sort()
    if (files.length > before) {
      const file = join(dir, files.at(-1))
      // written in one go by the broker's main thread: complete once it parses
      try { return JSON.parse(await readFile(file, 'utf8')) } catch {}
    }
  }
}

/** Self size and count by kind of object, and internal arrays' size by holder and property. */
function tally (snap) {
  const { node_fields: nodeFields, edge_fields: edgeFields, node_types: [nodeTypes], edge_types: [edgeTypes] } = snap.snapshot.meta
  const nf = nodeFields.length
  const ef = edgeFields.length
  const [iType, iName, iSize, iEdges] = ['type', 'name', 'self_size', 'edge_count'].map(f => nodeFields.indexOf(f))
  const [eType, eName, eTo] = ['type', 'name_or_index', 'to_node'].map(f => edgeFields.indexOf(f))
  const { nodes, edges, strings } = snap
  const kinds = new Map()
  const arrays = new Map()
  let total = 0
  let edge = 0
  for (let i = 0; i < nodes.length; i += nf) {
    const type = nodeTypes[nodes[i + iType]]
    const name = strings[nodes[i + iName]]
    const kind = type === 'closure' ? `closure ${name}` : type === 'object' || type === 'native' ? name : `(${type})`
    const size = nodes[i + iSize]
    total += size
    const k = kinds.get(kind) ?? { count: 0, size: 0 }
    k.count++
    k.size += size
    kinds.set(kind, k)
    for (let n = 0; n < nodes[i + iEdges]; n++, edge += ef) {
      const to = edges[edge + eTo]
      if (nodeTypes[nodes[to + iType]] !== 'array' || edgeTypes[edges[edge + eType]] === 'weak') continue
      const key = `${kind} -${edgeTypes[edges[edge + eType]] === 'element' ? '#' : strings[edges[edge + eName]]}->`
      arrays.set(key, (arrays.get(key) ?? 0) + nodes[to + iSize])
    }
  }
  return { total, kinds, arrays }
}

try {
  const warm = await open(Number(values.warm), 'warm')
  await sleep(3000)
  const before = tally(await snapshot())
  const subs = await open(COUNT, 'idle')
  await sleep(3000)
  const after = tally(await snapshot())
  await subs.close()
  await warm.close()
  console.log(`${COUNT} idle ${values.transport} subscribers: heap growth per connection ${((after.total - before.total) / COUNT).toFixed(0)} B`)
  const rows = (a, b, size) => [...a].map(([k, v]) => [k, (size(v) - size(b.get(k) ?? 0)) / COUNT, v]).sort((x, y) => y[1] - x[1]).slice(0, TOP)
  console.log('\nbytes per connection, objects per connection, kind')
  for (const [kind, bytes, v] of rows(after.kinds, before.kinds, x => x.size ?? 0)) {
    console.log(`${bytes.toFixed(0).padStart(7)} B ${((v.count - (before.kinds.get(kind)?.count ?? 0)) / COUNT).toFixed(2).padStart(6)}  ${kind}`)
  }
  console.log('\ninternal arrays (property stores, elements, tables) by holder, bytes per connection')
  for (const [key, bytes] of rows(after.arrays, before.arrays, x => x ?? 0)) console.log(`${bytes.toFixed(0).padStart(7)} B  ${key}`)
} finally {
  await broker.stop()
  await rm(dir, { recursive: true, force: true })
}
