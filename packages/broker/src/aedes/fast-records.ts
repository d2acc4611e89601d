import { EventEmitter } from 'node:events'
import type { Client } from 'aedes'
import { expect, type PatchContract } from './contract.js'

/**
 * An object with fast properties and no inherited names. V8 keeps objects made by
 * `Object.create(null)` and `{ __proto__: null }` as hash tables: about 190 B each with their
 * first keys, against about 65 B for an instance of this (its prototype is the only
 * hash table, shared). Same lookups: a name the object does not hold reads back as undefined,
 * `constructor` and `__proto__` included, since the prototype has no prototype.
 */
export const NoInheritedNames = function NoInheritedNames () {} as unknown as new () => Record<string, unknown>
NoInheritedNames.prototype = Object.create(null) as object

type Emitter = EventEmitter & { _events: Record<string, unknown> }
type Held = Client & { subscriptions: Record<string, unknown>, _events: Record<string, unknown>, _parser: Emitter }

/**
 * Written against Aedes 1.2, lib/client.js, and Node 20's EventEmitter. Every connection's
 * client keeps three objects of that slow kind for as long as it is connected: its
 * subscriptions by topic filter (`Object.create(null)`, GHSA-52qw-whmv-87c5), and the listener
 * tables (`_events`) of the client and of its parser, which EventEmitter makes with
 * `{ __proto__: null }`: with their first keys, about 0.4 KiB of an idle subscriber's memory.
 * Right after `broker.handle()` each is replaced by a NoInheritedNames holding the same
 * entries — fast as long as no key is deleted but the last one added, which is how the
 * client's `once('connected')` listener goes, so it is put last.
 */
export function useFastRecords (client: Client): void {
  const held = client as Held
  if (Object.keys(held.subscriptions).length === 0) held.subscriptions = new NoInheritedNames()
  held._events = fastCopy(held._events)
  held._parser._events = fastCopy(held._parser._events)
}

/** The same entries in a NoInheritedNames; once-listeners (removed when they fire) last, so removing them keeps it fast. */
function fastCopy (events: Record<string, unknown>): Record<string, unknown> {
  const copy = new NoInheritedNames()
  const keys = Object.keys(events)
  for (const key of keys) if (!isOnce(events[key])) copy[key] = events[key]
  for (const key of keys) if (isOnce(events[key])) copy[key] = events[key]
  return copy
}

/** EventEmitter's once wrapper keeps the listener it wraps as `listener`. */
function isOnce (listener: unknown): boolean {
  return typeof listener === 'function' && typeof (listener as { listener?: unknown }).listener === 'function'
}

export const fastRecordsContract: PatchContract = {
  patch: 'fast-records.ts',
  package: 'aedes',
  writtenAgainst: 'lib/client.js (Client constructor: subscriptions = Object.create(null); the parser\'s packet listener; once(\'connected\'); the error listeners) and Node\'s EventEmitter (listeners kept in `_events`)',
  sources: {
    'lib/client.js': [
      'this.subscriptions = Object.create(null)',
      'this._parser.on(\'packet\', enqueue)',
      'this.once(\'connected\', dequeue)'
    ]
  },
  verify ({ client }) {
    const problems: string[] = []
    const held = client as unknown as Partial<Held>
    expect(problems, typeof held.subscriptions === 'object' && held.subscriptions !== null && Object.getPrototypeOf(held.subscriptions) === null, 'client.subscriptions is not an object without a prototype')
    const events = (held as { _events?: unknown })._events
    expect(problems, typeof events === 'object' && events !== null && typeof (events as Record<string, unknown>).connected === 'function', 'the client\'s listeners are not in Node\'s EventEmitter `_events` (a once(\'connected\') listener among them)')
    expect(problems, typeof held._parser?._events === 'object' && typeof held._parser._events.packet === 'function', 'the parser\'s packet listener is not in its `_events`')
    // EventEmitter goes on working with its table replaced: add, emit, remove once and after
    const emitter = new EventEmitter() as Emitter
    emitter.on('a', () => {})
    emitter._events = fastCopy(emitter._events)
    let fired = 0
    emitter.once('b', () => { fired++ })
    emitter.emit('b')
    emitter.emit('b')
    expect(problems, fired === 1 && emitter.listenerCount('a') === 1 && emitter.listenerCount('b') === 0, 'Node\'s EventEmitter no longer works on a listener table it did not make')
    return problems
  }
}
