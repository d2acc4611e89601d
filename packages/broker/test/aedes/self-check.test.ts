import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Aedes, type Client } from 'aedes'
import { AedesPatchError, checkAedesPatches, CONTRACTS, packageDir } from '../../src/aedes/self-check.js'
import { installedVersion, WRITTEN_FOR, type PatchedPackage } from '../../src/aedes/versions.js'

// The start-up self-check: it passes on the installed dependencies, and refuses — naming the
// patch and what it was written against — when one of a patch's assumptions stops holding.

t.test('the installed Aedes and aedes-persistence-redis are what the patches were written for', async t => {
  t.match(installedVersion('aedes'), new RegExp(`^${WRITTEN_FOR.aedes.replace('.', '\\.')}\\.`))
  t.match(installedVersion('aedes-persistence-redis'), new RegExp(`^${WRITTEN_FOR['aedes-persistence-redis'].replace('.', '\\.')}\\.`))
  const broker = await Aedes.createBroker()
  t.teardown(() => broker.close())
  t.doesNotThrow(() => checkAedesPatches(broker, { cluster: true }), 'every contract holds, the Redis one included')
  t.equal(CONTRACTS.length, 29, 'one contract per patch, and one for internals.ts')
})

t.test('a client without deliver0 (an Aedes that renamed it) refuses the start, naming the fast path', async t => {
  const broker = await Aedes.createBroker()
  t.teardown(() => broker.close())
  const handle = broker.handle.bind(broker)
  broker.handle = (conn, req) => {
    const client = handle(conn, req) as Client & { deliver0?: unknown }
    client.deliver0 = undefined
    return client
  }
  const err: unknown = (() => { try { checkAedesPatches(broker, { cluster: false }) } catch (e) { return e } })()
  t.ok(err instanceof AedesPatchError, 'an AedesPatchError')
  t.match((err as Error).message, /qos0-fast-path\.ts \(written against aedes 1\.2, .*\): client\.deliver0 is not Aedes' deliverQoS0 function in aedes 1\.2\.\d+/)
})

t.test('a broker whose publish is no longer the prototype method refuses the start, naming drop-denied-publishes', async t => {
  const broker = await Aedes.createBroker()
  t.teardown(() => broker.close())
  Object.assign(broker, { publish: () => {} })
  t.throws(() => checkAedesPatches(broker, { cluster: false }), /drop-denied-publishes\.ts .*broker\.publish is not the prototype method/)
})

t.test('a source line a patch relies on that is gone refuses the start', async t => {
  const broker = await Aedes.createBroker()
  t.teardown(() => broker.close())
  const installed = (pkg: PatchedPackage, file: string): string => readFileSync(join(packageDir(pkg), file), 'utf8')
  const readSource = (pkg: PatchedPackage, file: string): string => installed(pkg, file).replaceAll('incomingStorePacket', 'storeIncoming')
  t.throws(() => checkAedesPatches(broker, { cluster: false, readSource }), /record-qos2-after-publish\.ts .*lib\/handlers\/publish\.js no longer contains `client\.broker\.persistence\.incomingStorePacket\(client, packet\)`/)
})
