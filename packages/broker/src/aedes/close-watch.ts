import type { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import type { Client } from 'aedes'
import { expect, type PatchContract } from './contract.js'

type Watched = Duplex & { client?: Client }
type Parser = EventEmitter & { client?: Client }
interface ClientWatch { _eos: () => void, conn: Watched, _parser: Parser }

/**
 * Written against Aedes 1.2, lib/client.js: the Client constructor watches its connection with
 * Node's `stream.finished` (`this._eos = finished(this.conn, this.close.bind(this))`), which for
 * each connection keeps a scope of 16 variables, seven closures, a bound function and a listener
 * on each of end, finish, error and close: about 1 KiB per idle subscriber, for as long as it
 * is connected. The constructor's own listeners already close the client on 'end' and on
 * 'error'; what `finished` adds is a 'close' without either (a connection destroyed, or reset
 * without an error event). So the watch is taken down at once (Aedes keeps its cleanup in
 * `_eos`) and replaced by one 'close' listener, a function every connection shares; `_eos`,
 * which Aedes calls as it closes the client, now removes that listener. Upstream: docs/upstream.md.
 *
 * The listener arrays `finished` added to keep the capacity they grew to (about 20 slots for
 * two listeners), so the events it listened to get their listeners back in arrays their size.
 *
 * The constructor's own listeners are bound functions made per client (`this.emit.bind(this,
 * 'error')` on the connection and on the parser, `this.close.bind(this)` on 'end'): each is
 * replaced, in its place in the listener list, by a function every connection shares, which
 * finds the client as `conn.client` / `parser.client` (Aedes sets both): ~0.2 KiB per idle
 * subscriber.
 */
export function watchClose (client: Client): void {
  const watch = client as unknown as ClientWatch
  watch._eos()
  for (const event of WATCHED_BY_FINISHED) compactListeners(watch.conn, event)
  watch.conn.on('close', closeClient)
  watch._eos = stopWatching
  replaceListener(watch.conn, 'error', 'bound emit', emitClientError)
  replaceListener(watch.conn, 'end', 'bound close', closeClient)
  replaceListener(watch._parser, 'error', 'bound emit', emitClientError)
}

/** Puts `shared` where the listener named `name` (a bound function's name: "bound " and the method's) is, without removing it: removing makes `_events` a dictionary. */
function replaceListener (emitter: EventEmitter, event: string, name: string, shared: (...args: never[]) => void): void {
  const events = (emitter as unknown as { _events: Record<string, unknown> })._events
  const listeners = events[event]
  if (typeof listeners === 'function') {
    if (listeners.name === name) events[event] = shared
  } else if (Array.isArray(listeners)) {
    const at = listeners.findIndex(listener => (listener as { name?: string }).name === name)
    if (at !== -1) listeners[at] = shared
  }
}

// the shared listeners: `this` is the connection or the parser, each knows its client
function emitClientError (this: Watched | Parser, err: Error): void {
  this.client?.emit('error', err)
}

const WATCHED_BY_FINISHED = ['end', 'finish', 'error', 'close'] as const

/**
 * An event's listener array copied at its length, in place (EventEmitter's `_events`: one listener
 * as the function itself, more as an array). Removing and adding the listeners again would make
 * `_events` a dictionary (a `delete` on it): larger than what it saves.
 */
function compactListeners (stream: Duplex, event: string): void {
  const events = (stream as unknown as { _events: Record<string, unknown> })._events
  const listeners = events[event]
  if (Array.isArray(listeners)) events[event] = listeners.length === 1 ? listeners[0] : listeners.slice()
}

function closeClient (this: Watched): void {
  this.client?.close()
}

function stopWatching (this: ClientWatch): void {
  this.conn.removeListener('close', closeClient)
}

export const closeWatchContract: PatchContract = {
  patch: 'close-watch.ts',
  package: 'aedes',
  writtenAgainst: 'lib/client.js (Client constructor: conn.client, _parser.client, the error and end listeners, _eos = finished(...); close: _eos(); _onError closes)',
  sources: {
    'lib/client.js': [
      'conn.client = this',
      'this._parser.client = this',
      'this._parser.on(\'error\', this.emit.bind(this, \'error\'))',
      'conn.on(\'error\', this.emit.bind(this, \'error\'))',
      'conn.on(\'end\', this.close.bind(this))\n    this._eos = finished(this.conn, this.close.bind(this))',
      'this._eos()\n    this._eos = noop',
      'this.broker.emit(this.id ? \'clientError\' : \'connectionError\', this, err)\n    this.close()'
    ]
  },
  verify ({ client }) {
    const problems: string[] = []
    const watch = client as unknown as Partial<ClientWatch>
    expect(problems, typeof watch._eos === 'function', 'client._eos is not a function')
    expect(problems, (watch.conn as Watched | undefined)?.client === (client as unknown as Client), 'client.conn.client is not the client')
    const events = (watch.conn as unknown as { _events?: Record<string, unknown> } | undefined)?._events
    expect(problems, typeof events === 'object' && events !== null && Array.isArray(events.end), 'the connection\'s listeners are not in Node\'s EventEmitter `_events` (several per event in an array)')
    const named = (emitter: EventEmitter | undefined, event: string, name: string): boolean => emitter?.listeners(event).some(listener => listener.name === name) === true
    expect(problems, named(watch.conn, 'error', 'bound emit') && named(watch.conn, 'end', 'bound close') && named(watch._parser, 'error', 'bound emit'),
      'the connection\'s error and end listeners and the parser\'s error listener are not Aedes\' bound emit / close')
    expect(problems, (watch._parser as Parser | undefined)?.client === (client as unknown as Client), 'client._parser.client is not the client')
    return problems
  }
}
