import { createRequire } from 'node:module'
import { join } from 'node:path'
import type { Client } from 'aedes'
import { expect, type PatchContract } from './contract.js'
import { installedDir } from './versions.js'

/** What mqtt-packet's parser calls on its list of unparsed bytes (parser.js `this._list.*`), and bl's own array of them */
interface ByteList { append (buffer: Buffer): unknown, consume (bytes: number): ByteList, length: number, _bufs: Buffer[] }
type ByteListClass = new () => ByteList

/**
 * Written against mqtt-packet 9.0, parser.js: each parser keeps the bytes it has not parsed yet
 * in `bl()`, a BufferListStream — a readable-stream Duplex, with both stream states, an event
 * emitter and bound callbacks: about 0.9 KiB per connection, held for as long as it is open, of
 * which the parser uses only the list (append, consume, length, reads and slices). Each
 * connection's parser gets the same package's plain BufferList instead, which is that list
 * without the stream. After a parse error the parser makes itself a `bl()` again; Aedes closes
 * the connection then. Upstream: docs/upstream.md.
 *
 * BufferList's `consume` shifts what it consumed off its array of buffers, which keeps the
 * capacity it grew to (17 slots from the first append on): a list consumed to empty, as a
 * subscriber's is between the few packets it sends, starts a new array instead.
 */
export class ParserBufferList {
  readonly #List: ByteListClass

  constructor () {
    this.#List = parserListClass()
  }

  /** Right after `broker.handle()`, before the connection's first byte is parsed. */
  install (client: Client): void {
    const parser = (client as unknown as { _parser: { _list: ByteList } })._parser
    if (parser._list.length === 0) parser._list = new this.#List()
  }
}

/** bl's BufferList, as mqtt-packet resolves bl */
function bufferListClass (): ByteListClass {
  const fromParser = createRequire(join(installedDir('mqtt-packet'), 'parser.js'))
  return fromParser('bl/BufferList.js') as ByteListClass
}

/** bl's BufferList, letting go of its array when consumed to empty */
function parserListClass (): ByteListClass {
  const BufferList = bufferListClass()
  return class ParserList extends BufferList {
    override consume (bytes: number): ByteList {
      super.consume(bytes)
      if (this.length === 0) this._bufs = []
      return this
    }
  }
}

/** What the parser calls on `_list`, read from its source */
function listMethodsUsed (parserSource: string): string[] {
  return [...new Set([...parserSource.matchAll(/this\._list\.(\w+)/g)].map(m => m[1]!))]
}

export const parserBufferListContract: PatchContract = {
  patch: 'parser-buffer-list.ts',
  package: 'mqtt-packet',
  writtenAgainst: 'parser.js (Parser: _resetState makes `this._list = bl()`; parse and the _parse* methods use it as a list) and bl\'s BufferList.js',
  sources: { 'parser.js': ['const bl = require(\'bl\')', 'this._list = bl()'] },
  verify ({ client, source }) {
    const problems: string[] = []
    const List = bufferListClass()
    const list = new List()
    list.append(Buffer.from('ab'))
    expect(problems, list.length === 2, 'bl\'s BufferList does not count what is appended in `length`')
    expect(problems, Array.isArray(list._bufs) && list._bufs.length === 1, 'bl\'s BufferList keeps its buffers elsewhere than in the array `_bufs`')
    list.consume(2)
    expect(problems, list.length === 0 && list._bufs.length === 0, 'bl\'s BufferList consume does not take consumed buffers off `_bufs`')
    for (const method of listMethodsUsed(source('mqtt-packet', 'parser.js'))) {
      if (method === 'length') continue
      expect(problems, typeof (list as unknown as Record<string, unknown>)[method] === 'function', `bl's BufferList has no ${method}, which the parser calls on its list`)
    }
    const parser = (client as unknown as { _parser?: { _list?: ByteList } })._parser
    expect(problems, parser?._list?.length === 0, 'a new client\'s parser has no empty _list')
    return problems
  }
}
