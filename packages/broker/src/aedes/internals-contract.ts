import { expect, type PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'

/** The fields internals.ts reads, outside any patch (hooks, $SYS, reload). */
export const internalsContract: PatchContract = {
  patch: 'internals.ts',
  package: 'aedes',
  writtenAgainst: 'aedes.js (Aedes: id, clients) and lib/client.js (Client: subscriptions, broker, _will, will, close)',
  verify ({ broker, client }) {
    const problems: string[] = []
    const b = brokerInternals(broker)
    expect(problems, typeof b.id === 'string', 'broker.id is not a string')
    expect(problems, typeof b.clients === 'object' && b.clients !== null && !Array.isArray(b.clients), 'broker.clients (connected clients by id) is missing')
    expect(problems, typeof client.subscriptions === 'object' && client.subscriptions !== null, 'client.subscriptions is missing')
    expect(problems, client.broker === broker, 'client.broker is not the broker')
    expect(problems, '_will' in client && 'will' in client, 'client._will / client.will are missing')
    expect(problems, typeof client.close === 'function', 'client.close is not a function')
    expect(problems, typeof client.duplicates === 'object' && client.duplicates !== null, 'client.duplicates is missing')
    return problems
  }
}
