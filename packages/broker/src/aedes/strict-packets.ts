import { isUtf8 } from 'node:buffer'
import type { Client } from 'aedes'
import { expect, type PatchContract } from './contract.js'

/** A packet that breaks MQTT 3.1.1 in a way mqtt-packet lets through: the connection is closed (as Mosquitto does). */
export class ProtocolViolation extends Error {
  readonly code = 'FIREHOSE_PROTOCOL_VIOLATION'
}

/** The parts of an mqtt-packet 9.0 Parser (parser.js) this patch reads or replaces. */
interface ParserInternals {
  _list: { length: number, readUInt8: (at: number) => number, readUInt16BE: (at: number) => number, toString: (encoding: 'utf8', start: number, end: number) => string, slice: (start: number, end: number) => Buffer }
  _pos: number
  error: Error | null
  packet: { length: number, messageId?: number, subscriptions?: unknown[], unsubscriptions?: unknown[], [field: string]: unknown }
  _parseString: () => string | null
  _parseMessageId: () => boolean
  _parseConnect: () => unknown
  _parseSubscribe: () => unknown
  _parseUnsubscribe: () => unknown
  _emitError: (err: Error) => void
  /** set by a check below; the next error the parser emits is this one */
  _violation?: ProtocolViolation
}

type Originals = Pick<ParserInternals, '_parseString' | '_parseMessageId' | '_parseConnect' | '_parseSubscribe' | '_parseUnsubscribe' | '_emitError'>
const PATCHED = ['_parseString', '_parseMessageId', '_parseConnect', '_parseSubscribe', '_parseUnsubscribe', '_emitError'] as const

/** CONNECT flags (MQTT 3.1.1 §3.1.2.3) */
const USER_NAME_FLAG = 0x80
const PASSWORD_FLAG = 0x40

/**
 * Written against mqtt-packet 9.0, parser.js (`_parseString`, `_parseMessageId`,
 * `_parseConnect`, `_parseSubscribe`, `_parseUnsubscribe`, `_emitError`), the parser Aedes
 * gives each connection (`client._parser`). It lets through what MQTT 3.1.1 says a server
 * must close the connection for, and what Mosquitto closes it for:
 *
 * - strings (topics, filters, client ids, user names) that are not well-formed UTF-8, or hold
 *   U+0000 [MQTT-1.5.3-1/2]: it decodes them with Buffer#toString, which replaces bad bytes
 *   with U+FFFD — so subscribers got a different topic from the one published;
 * - packet id 0 in a PUBLISH (QoS 1, 2), SUBSCRIBE, UNSUBSCRIBE or acknowledgement [MQTT-2.3.1-1];
 * - SUBSCRIBE and UNSUBSCRIBE with no filter [MQTT-3.8.3-3, MQTT-3.10.3-2] (its check counts
 *   the packet id as payload);
 * - a password without a user name, in MQTT 3.1 and 3.1.1 [MQTT-3.1.2-22];
 * - a protocol level it does not know: it closed the connection without a word, where the
 *   server must answer CONNACK 1 [MQTT-3.1.2-2]. The CONNECT goes on to Aedes with only its
 *   level, and Aedes answers 1 and closes.
 *
 * Each ends as a `ProtocolViolation` the parser emits: Aedes closes the connection, and the
 * broker logs and counts it. Installed per connection, before its first byte is parsed, on the
 * parser instance (the prototype, shared with anything else using mqtt-packet, is left alone).
 * Upstream: docs/upstream.md.
 */
export class StrictPackets {
  #overrides: Originals | undefined

  install (client: Client): void {
    const parser = (client as unknown as { _parser: ParserInternals })._parser
    this.#overrides ??= strictOverrides(Object.getPrototypeOf(parser) as Originals)
    Object.assign(parser, this.#overrides)
  }
}

function violation (parser: ParserInternals, message: string): void {
  parser._violation ??= new ProtocolViolation(message)
}

/** A (UN)SUBSCRIBE parsed without an error must have a filter (mqtt-packet's own check counts the packet id as payload). */
function requireFilter (parser: ParserInternals, filters: unknown[] | undefined, message: string): void {
  if (parser.error !== null || filters?.length !== 0) return
  violation(parser, message)
  parser._emitError(new Error('no topic filter'))
}

function strictOverrides (original: Originals): Originals {
  return {
    _parseString (this: ParserInternals): string | null {
      const start = this._pos + 2
      const text = original._parseString.call(this)
      if (text === null) return null
      // Buffer#toString turns bad bytes into U+FFFD: only then are the bytes looked at again
      if (text.includes('\u0000')) violation(this, 'a string holds U+0000 [MQTT-1.5.3-2]')
      else if (text.includes('\uFFFD') && !isUtf8(this._list.slice(start, this._pos))) violation(this, 'a string is not well-formed UTF-8 [MQTT-1.5.3-1]')
      else return text
      return null
    },
    _parseMessageId (this: ParserInternals): boolean {
      if (!original._parseMessageId.call(this)) return false
      if (this.packet.messageId !== 0) return true
      violation(this, 'packet id 0 [MQTT-2.3.1-1]')
      this._emitError(new Error('packet id 0'))
      return false
    },
    _parseConnect (this: ParserInternals): unknown {
      const list = this._list
      if (list.length >= 2) {
        const at = 2 + list.readUInt16BE(0)
        if (list.length >= at + 2) {
          const level = list.readUInt8(at) & 0x7f // the high bit marks a bridge
          const flags = list.readUInt8(at + 1)
          const protocolId = list.toString('utf8', 2, at)
          if ((protocolId === 'MQTT' || protocolId === 'MQIsdp') && level !== 3 && level !== 4 && level !== 5) {
            // Aedes answers CONNACK 1 (unacceptable protocol level) and closes
            Object.assign(this.packet, { protocolId, protocolVersion: level, clientId: '', clean: true, keepalive: 0 })
            return this.packet
          }
          if ((level === 3 || level === 4) && (flags & PASSWORD_FLAG) !== 0 && (flags & USER_NAME_FLAG) === 0) {
            violation(this, 'a password without a user name [MQTT-3.1.2-22]')
            this._emitError(new Error('password without user name'))
            return undefined
          }
        }
      }
      return original._parseConnect.call(this)
    },
    _parseSubscribe (this: ParserInternals): unknown {
      const result = original._parseSubscribe.call(this)
      requireFilter(this, this.packet.subscriptions, 'SUBSCRIBE with no topic filter [MQTT-3.8.3-3]')
      return result
    },
    _parseUnsubscribe (this: ParserInternals): unknown {
      const result = original._parseUnsubscribe.call(this)
      requireFilter(this, this.packet.unsubscriptions, 'UNSUBSCRIBE with no topic filter [MQTT-3.10.3-2]')
      return result
    },
    _emitError (this: ParserInternals, err: Error): void {
      const found = this._violation
      this._violation = undefined
      original._emitError.call(this, found ?? err)
    }
  }
}

export const strictPacketsContract: PatchContract = {
  patch: 'strict-packets.ts',
  package: 'mqtt-packet',
  writtenAgainst: 'parser.js (Parser: _parseString, _parseNum, _parseMessageId, _parseConnect, _parseSubscribe, _parseUnsubscribe, _emitError; _list, _pos, packet, error)',
  sources: {
    'parser.js': [
      'const result = this._list.toString(\'utf8\', this._pos, end)',
      'const result = this._list.readUInt16BE(this._pos)\n    this._pos += 2',
      'packet.messageId = this._parseNum()',
      'packet.unsubscriptions = []',
      'packet.subscriptions = []',
      'const protocolId = this._parseString()',
      'this.error = err\n    this.emit(\'error\', err)'
    ]
  },
  verify ({ client }) {
    const parser = (client as unknown as { _parser?: Partial<ParserInternals> })._parser
    const problems: string[] = []
    expect(problems, parser !== undefined, 'the client has no _parser')
    for (const method of PATCHED) expect(problems, typeof parser?.[method] === 'function', `the client's parser has no ${method}`)
    return problems
  }
}
