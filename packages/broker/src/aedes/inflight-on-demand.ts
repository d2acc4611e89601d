import type { Client } from 'aedes'
import { expect, type PatchContract } from './contract.js'

/**
 * Written against Aedes 1.2: every client gets `_inboundInflight = new Set()` (lib/client.js),
 * the packet ids of its QoS 2 PUBLISHes awaiting PUBREL, bounded by `maxInflightInbound`
 * (lib/handlers/publish.js: has, size, add, delete; pubrel.js: delete). A subscriber never
 * publishes at QoS 2, and an empty Set with its hash table is about 150 bytes of every idle
 * connection. This is the same four operations on a Set made at the first `add`.
 */
export class SetOnFirstAdd<T> {
  #set: Set<T> | undefined

  get size (): number { return this.#set?.size ?? 0 }

  has (value: T): boolean { return this.#set?.has(value) ?? false }

  add (value: T): this {
    (this.#set ??= new Set()).add(value)
    return this
  }

  delete (value: T): boolean { return this.#set?.delete(value) ?? false }
}

/** Right after `broker.handle()`, before the client's first packet. */
export function inflightOnDemand (client: Client): void {
  (client as unknown as { _inboundInflight: unknown })._inboundInflight = new SetOnFirstAdd<number>()
}

export const inflightOnDemandContract: PatchContract = {
  patch: 'inflight-on-demand.ts',
  package: 'aedes',
  writtenAgainst: 'lib/client.js (Client: _inboundInflight), lib/handlers/publish.js (QoS 2: has, size, add, delete) and lib/handlers/pubrel.js (delete)',
  sources: {
    'lib/client.js': ['this._inboundInflight = new Set()'],
    'lib/handlers/publish.js': [
      'const inflight = client._inboundInflight',
      'if (limit > 0 && !inflight.has(packet.messageId) && inflight.size >= limit) {',
      'inflight.add(packet.messageId)',
      'inflight.delete(packet.messageId)'
    ],
    'lib/handlers/pubrel.js': ['client._inboundInflight.delete(arg.packet.messageId)']
  },
  verify ({ client, source }) {
    const problems: string[] = []
    expect(problems, (client as unknown as { _inboundInflight?: unknown })._inboundInflight instanceof Set, 'a new client\'s _inboundInflight is not a Set')
    // nothing else of the Set is used (iteration, clear, ...): only the four operations above
    const publish = source('aedes', 'lib/handlers/publish.js')
    const used = new Set([...publish.matchAll(/\binflight\.(\w+)/g)].map(m => m[1]))
    for (const member of used) expect(problems, ['has', 'size', 'add', 'delete'].includes(member!), `lib/handlers/publish.js uses inflight.${member!}`)
    const mentions = ['lib/client.js', 'lib/handlers/publish.js', 'lib/handlers/pubrel.js', 'lib/handlers/connect.js', 'aedes.js']
      .reduce((n, file) => n + source('aedes', file).split('_inboundInflight').length - 1, 0)
    expect(problems, mentions === 3, `Aedes mentions _inboundInflight ${mentions} times where this was written against 3`)
    return problems
  }
}
