import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Client } from 'aedes'
import { expect, type PatchContract } from './contract.js'
import { installedDir } from './versions.js'

const PATCHED = Symbol('firehose.parserSettings')

/** What of mqtt-packet 9.0's Parser (parser.js) this patch reads or replaces. */
interface ParserState {
  _states: readonly string[]
  settings: object
}
interface ParserPrototype { _parseConnect: (this: ParserState) => unknown, [PATCHED]?: true }

/** What the parser reads of its settings once CONNECT is parsed. */
interface ConnectSettings { readonly protocolVersion: number, readonly bridgeMode: boolean }

/**
 * Written against mqtt-packet 9.0, parser.js. Each parser makes its own array of its four state
 * names (`_states`, never changed), and parsing CONNECT keeps the whole CONNECT packet as the
 * parser's `settings` (client id, username, password, will and all) for as long as the
 * connection is open, of which the parser then reads only `protocolVersion` and `bridgeMode`.
 * Each client's parser gets one states array all share, and after CONNECT a frozen settings
 * object shared by every connection of the same protocol version and bridge mode: about
 * 0.2 KiB per idle subscriber. Upstream: docs/upstream.md.
 */
export class ParserSettings {
  readonly #states: readonly string[]

  constructor () {
    const Parser = parserClass()
    this.#states = Object.freeze([...(new Parser() as unknown as { parser: () => ParserState }).parser()._states])
    const prototype = Parser.prototype as ParserPrototype
    if (prototype[PATCHED] === true) return
    prototype[PATCHED] = true
    const parseConnect = prototype._parseConnect
    const settings = new Map<string, ConnectSettings>()
    // once per process: every parser of the broker's mqtt-packet
    prototype._parseConnect = function parseConnectSharingSettings (this: ParserState) {
      const packet = parseConnect.call(this)
      if (packet !== undefined && packet !== null && this.settings === packet) this.settings = sharedSettings(settings, packet as Partial<ConnectSettings>)
      return packet
    }
  }

  /** Right after `broker.handle()`, before the connection's first byte is parsed. */
  install (client: Client): void {
    const parser = (client as unknown as { _parser: ParserState })._parser
    parser._states = this.#states
  }
}

function sharedSettings (shared: Map<string, ConnectSettings>, packet: Partial<ConnectSettings>): ConnectSettings {
  const protocolVersion = packet.protocolVersion ?? 4
  const bridgeMode = packet.bridgeMode === true
  const key = `${protocolVersion}/${String(bridgeMode)}`
  let settings = shared.get(key)
  if (settings === undefined) {
    settings = Object.freeze({ protocolVersion, bridgeMode })
    shared.set(key, settings)
  }
  return settings
}

/** mqtt-packet's Parser, as Aedes resolves mqtt-packet */
function parserClass (): new () => unknown {
  return createRequire(join(installedDir('mqtt-packet'), 'package.json'))('./parser.js') as new () => unknown
}

function parserPrototype (): ParserPrototype {
  return parserClass().prototype as ParserPrototype
}

export const parserSettingsContract: PatchContract = {
  patch: 'parser-settings.ts',
  package: 'mqtt-packet',
  writtenAgainst: 'parser.js (Parser.parser: _states; _parseConnect: this.settings = packet; the parser reads settings.protocolVersion and settings.bridgeMode only)',
  sources: {
    'parser.js': [
      "this._states = [\n      '_parseHeader',\n      '_parseLength',\n      '_parsePayload',\n      '_newPacket'\n    ]",
      'this.settings = packet\n',
      'packet.bridgeMode = true',
      'this[this._states[this._stateCounter]]()'
    ]
  },
  verify ({ client, source }) {
    const problems: string[] = []
    const text = source('mqtt-packet', 'parser.js')
    // every read of settings: only these two fields, and the two assignments (opt, the CONNECT packet)
    const reads = new Set([...text.matchAll(/this\.settings\.(\w+)/g)].map(m => m[1]!))
    expect(problems, [...reads].every(field => field === 'protocolVersion' || field === 'bridgeMode'),
      `the parser reads settings fields other than protocolVersion and bridgeMode: ${[...reads].join(', ')}`)
    expect(problems, [...text.matchAll(/this\.settings\s*=/g)].length === 2, 'the parser sets its settings in places other than parser() and _parseConnect')
    const parser = (client as unknown as { _parser?: Partial<ParserState> })._parser
    expect(problems, Array.isArray(parser?._states) && parser._states.length === 4, 'client._parser._states is not an array of four state names')
    expect(problems, typeof parserPrototype()._parseConnect === 'function', 'the Parser has no _parseConnect')
    return problems
  }
}
