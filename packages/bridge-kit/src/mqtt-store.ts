import { Readable } from 'node:stream'
import type { IStore } from 'mqtt'
import type { Packet } from 'mqtt-packet'

/** How the outbox lets mqtt.js keep its in-flight QoS 2 packets on disk. */
export interface InflightBackend {
  putInflight: (messageId: number, packet: StoredPacket) => Promise<void>
  getInflight: (messageId: number) => Promise<StoredPacket | undefined>
  /** deletes the in-flight packet and, in the same write, the outbox event it carried */
  completeInflight: (messageId: number) => Promise<StoredPacket | undefined>
  listInflight: () => Promise<StoredPacket[]>
}

export interface StoredPacket {
  /** the outbox event this PUBLISH (or its PUBREL) carries */
  seq?: number
  packet: Record<string, unknown> & { cmd: string, messageId?: number }
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
export class DiskMqttStore implements IStore {
  /** the outbox event the next stored PUBLISH carries */
  nextSeq: number | undefined

  constructor (private readonly backend: InflightBackend) {}

  put (packet: Packet, cb: (err?: Error) => void): this {
    const messageId = (packet as { messageId?: number }).messageId
    if (messageId === undefined) {
      cb()
      return this
    }
    const write = async (): Promise<void> => {
      const existing = packet.cmd === 'pubrel' ? await this.backend.getInflight(messageId) : undefined
      const seq = packet.cmd === 'publish' ? this.nextSeq : existing?.seq
      if (packet.cmd === 'publish') this.nextSeq = undefined
      await this.backend.putInflight(messageId, { ...(seq === undefined ? {} : { seq }), packet: serialize(packet) })
    }
    write().then(() => cb(), (err: Error) => cb(err))
    return this
  }

  get (packet: Pick<Packet, 'messageId'>, cb: (err?: Error, packet?: Packet) => void): this {
    this.backend.getInflight(packet.messageId!).then(
      stored => stored === undefined ? cb(new Error('missing packet')) : cb(undefined, deserialize(stored.packet)),
      (err: Error) => cb(err))
    return this
  }

  del (packet: Pick<Packet, 'messageId'>, cb: (err?: Error, packet?: Packet) => void): this {
    this.backend.completeInflight(packet.messageId!).then(
      stored => stored === undefined ? cb(new Error('missing packet')) : cb(undefined, deserialize(stored.packet)),
      (err: Error) => cb(err))
    return this
  }

  createStream (): ReturnType<IStore['createStream']> {
    const packets = this.backend.listInflight().then(list => list.map(s => deserialize(s.packet)))
    // mqtt.js types this as readable-stream's Readable; it only reads, listens and destroys
    return Readable.from((async function * () { yield * await packets })(), { objectMode: true }) as unknown as ReturnType<IStore['createStream']>
  }

  /** The store outlives each connection (and its client's end()): the outbox closes the disk. */
  close (cb: (err?: Error) => void): void {
    cb()
  }
}
