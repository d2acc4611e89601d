import { Readable } from 'node:stream'
import type { IStore } from 'mqtt'
import type { Packet } from 'mqtt-packet'
import { Keyspace, type BatchOp, type Db } from './keyspace.js'

export interface StoredPacket {
  /** the outbox event this PUBLISH (or its PUBREL) carries */
  seq?: number
  packet: Record<string, unknown> & { cmd: string, messageId?: number }
}

/** What the store needs from its outbox: which event a PUBLISH carries, and where a PUBCOMP goes. */
export interface InflightOwner {
  /** the outbox event whose PUBLISH mqtt.js is storing now (the one last handed to the publisher), taken once */
  takeSending: () => number | undefined
  /** PUBCOMP: the packet and the event it carried leave the disk in one write (`ops`) */
  acknowledge: (ops: BatchOp[], seq: number | undefined) => Promise<void>
}

function serialize (packet: Packet): StoredPacket['packet'] {
  const { payload, ...rest } = packet as Packet & { payload?: Buffer | string }
  return payload === undefined ? rest : { ...rest, payload: Buffer.from(payload).toString('base64'), payloadBase64: true }
}

function deserialize (stored: StoredPacket['packet']): Packet {
  const { payloadBase64, payload, ...rest } = stored as StoredPacket['packet'] & { payloadBase64?: boolean, payload?: string }
  return (payloadBase64 === true ? { ...rest, payload: Buffer.from(payload!, 'base64') } : rest) as unknown as Packet
}

/**
 * mqtt.js's outgoing store, on the outbox's disk. With it and a persistent session, the QoS 2
 * handshake survives a bridge crash: on reconnect mqtt.js re-sends the stored PUBLISH (the
 * broker recognises its packet id and does not publish it again) or PUBREL, and the PUBCOMP
 * removes the packet and its outbox event in one write. That leaves no moment at which the
 * broker has an event and the outbox still thinks it has to send it.
 */
export class InflightStore implements IStore {
  readonly #space: Keyspace
  readonly #owner: InflightOwner
  /** every stored packet's outbox event (or none), by packet id: the disk's `seq` fields, in memory */
  readonly #carried = new Map<number, number | undefined>()

  constructor (db: Db, owner: InflightOwner) {
    this.#space = new Keyspace(db, 'q!')
    this.#owner = owner
  }

  #key (messageId: number): string { return this.#space.key(String(messageId).padStart(5, '0')) }

  /** Loads what a previous run left in flight (mqtt.js re-sends it after connecting). */
  async load (): Promise<void> {
    for (const stored of await this.#list()) this.#carried.set(stored.packet.messageId!, stored.seq)
  }

  /** Whether an event's handshake is open, from this connection or an earlier one. */
  get carrying (): boolean {
    for (const seq of this.#carried.values()) if (seq !== undefined) return true
    return false
  }

  put (packet: Packet, cb: (err?: Error) => void): this {
    const messageId = (packet as { messageId?: number }).messageId
    if (messageId === undefined) {
      cb()
      return this
    }
    const write = async (): Promise<void> => {
      // a PUBREL, or a PUBLISH stored again, keeps the event its first PUBLISH carried
      const seq = this.#carried.has(messageId) ? this.#carried.get(messageId) : packet.cmd === 'publish' ? this.#owner.takeSending() : undefined
      const stored: StoredPacket = { ...(seq === undefined ? {} : { seq }), packet: serialize(packet) }
      await this.#space.db.put(this.#key(messageId), JSON.stringify(stored), { sync: true })
      this.#carried.set(messageId, seq)
    }
    write().then(() => cb(), (err: Error) => cb(err))
    return this
  }

  get (packet: Pick<Packet, 'messageId'>, cb: (err?: Error, packet?: Packet) => void): this {
    this.#get(packet.messageId!).then(
      stored => stored === undefined ? cb(new Error('missing packet')) : cb(undefined, deserialize(stored.packet)),
      (err: Error) => cb(err))
    return this
  }

  /** The broker's PUBCOMP (mqtt.js deletes the packet): the acknowledgement, handed to the outbox. */
  del (packet: Pick<Packet, 'messageId'>, cb: (err?: Error, packet?: Packet) => void): this {
    const messageId = packet.messageId!
    const complete = async (): Promise<StoredPacket | undefined> => {
      const stored = await this.#get(messageId)
      if (stored === undefined) return undefined
      await this.#owner.acknowledge([{ type: 'del', key: this.#key(messageId) }], stored.seq)
      this.#carried.delete(messageId)
      return stored
    }
    complete().then(
      stored => stored === undefined ? cb(new Error('missing packet')) : cb(undefined, deserialize(stored.packet)),
      (err: Error) => cb(err))
    return this
  }

  createStream (): ReturnType<IStore['createStream']> {
    const packets = this.#list().then(list => list.map(s => deserialize(s.packet)))
    // mqtt.js types this as readable-stream's Readable; it only reads, listens and destroys
    return Readable.from((async function * () { yield * await packets })(), { objectMode: true }) as unknown as ReturnType<IStore['createStream']>
  }

  /** The store outlives each connection (and its client's end()): the outbox closes the disk. */
  close (cb: (err?: Error) => void): void {
    cb()
  }

  async #get (messageId: number): Promise<StoredPacket | undefined> {
    const value = await this.#space.db.get(this.#key(messageId))
    return value === undefined ? undefined : JSON.parse(value) as StoredPacket
  }

  async #list (): Promise<StoredPacket[]> {
    const list: StoredPacket[] = []
    for await (const value of this.#space.db.values(this.#space.range)) list.push(JSON.parse(value) as StoredPacket)
    return list
  }
}
