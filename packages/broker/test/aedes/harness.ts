import { mkdtemp } from 'node:fs/promises'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Aedes, type AedesOptions, type Client } from 'aedes'
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { openLevelPersistence, type AedesPersistence } from '../../src/store.js'

/**
 * A real Aedes broker in this process on a loopback port, with a function called on each
 * client right after `broker.handle()` (where the broker installs its per-client patches):
 * what the contract tests of src/aedes/ run against.
 */
export class AedesUnderTest {
  readonly clients: MqttClient[] = []

  private constructor (readonly broker: Aedes, readonly server: Server) {}

  /** `setup` gets the broker and returns what to do with each new client */
  static async start (options: AedesOptions = {}, setup: (broker: Aedes) => (client: Client) => void = () => () => {}): Promise<AedesUnderTest> {
    const broker = await Aedes.createBroker(options)
    const onClient = setup(broker)
    const server = createServer(socket => onClient(broker.handle(socket)))
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    return new AedesUnderTest(broker, server)
  }

  get url (): string { return `mqtt://127.0.0.1:${(this.server.address() as AddressInfo).port}` }

  async connect (options: IClientOptions = {}): Promise<MqttClient> {
    const client = await connectAsync(this.url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
    this.clients.push(client)
    return client
  }

  async close (): Promise<void> {
    await Promise.all(this.clients.map(async c => await c.endAsync(true)))
    await new Promise<void>(resolve => this.broker.close(() => resolve()))
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }
}

export async function until (what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

/**
 * The broker's LevelDB persistence in a fresh directory, with `method` made slower by a delay
 * of up to `maxMs` (random, or exactly `maxMs`): store steps that finish in another order
 * than they started, as under load.
 */
export async function slowedPersistence (method: string, maxMs: number, random = true): Promise<AedesPersistence> {
  const persistence = await openLevelPersistence(await mkdtemp(join(tmpdir(), 'firehose-contract-')), 'test')
  const original = (persistence[method] as (...args: unknown[]) => Promise<unknown>).bind(persistence)
  persistence[method] = async (...args: unknown[]) => {
    await new Promise(resolve => setTimeout(resolve, random ? Math.random() * maxMs : maxMs))
    return await original(...args)
  }
  return persistence
}
