import type { MQEmitter } from 'mqemitter'
import type { PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'

/** The parts of an mqemitter 7.1 instance (mqemitter.js) this patch reads or replaces. */
interface MqEmitterInternals {
  _do: (message: unknown, callback: unknown) => unknown
  _messageQueue: unknown[]
  current: number
  concurrency: number
}

/**
 * Written against mqemitter 7.1, mqemitter.js (`released` and `_do`), the message bus Aedes
 * fans out through (mqemitter-redis inherits both). While deliveries hold all `concurrency`
 * slots, emitted messages wait in a queue; each released slot calls `_do` for the next one,
 * and for a message nobody subscribes to, fastparallel calls `released` back at once — so the
 * queue drains by recursion, several frames per message. A publisher that sends a few
 * thousand messages to a topic without subscribers right behind a burst to one with
 * subscribers overflows the stack: the broker dies (RangeError: Maximum call stack size
 * exceeded). Here a `_do` called while one runs is queued and run when it returns, in order:
 * the same work, in a loop. Upstream: docs/upstream.md.
 */
export function drainWithoutRecursion (mq: MQEmitter): void {
  const internals = mq as MQEmitter & MqEmitterInternals
  const run = internals._do.bind(mq)
  const waiting: Array<[unknown, unknown]> = []
  let running = false
  internals._do = function drainLoop (message, callback) {
    waiting.push([message, callback])
    if (running) return mq
    running = true
    try {
      for (let next = waiting.shift(); next !== undefined; next = waiting.shift()) run(next[0], next[1])
    } finally {
      running = false
    }
    return mq
  }
}

export const mqemitterDrainLoopContract: PatchContract = {
  patch: 'mqemitter-drain-loop.ts',
  package: 'mqemitter',
  writtenAgainst: 'mqemitter.js (released: that._do(message, callback); MQEmitter.prototype._do)',
  sources: { 'mqemitter.js': ['that._do(message, callback)', 'MQEmitter.prototype._do = function (message, callback)'] },
  verify ({ broker }) {
    const mq: Partial<MqEmitterInternals> = brokerInternals(broker).mq
    return typeof mq._do === 'function' && Array.isArray(mq._messageQueue) && typeof mq.current === 'number'
      ? []
      : ['the broker\'s mq has no _do / _messageQueue / current']
  }
}
