import { randomUUID } from 'node:crypto'
import { createRequire } from 'node:module'
import type { Aedes, AedesPublishPacket, Client, PublishPacket } from 'aedes'
import { expect, type PatchContract } from './contract.js'
import { brokerInternals } from './internals.js'
import { editApplies, type SourceEdit } from './redis-persistence-module.js'

const METHOD = 'firehoseEnqueueRecordEmit'
const ANCHOR = '  async outgoingUpdate (client, packet) {'

/**
 * KEYS: the message, its count of sessions to deliver to, the publisher's incoming (QoS 2)
 * hash, then each persistent session's queue. ARGV: the encoded message, the count, the
 * packet id, the encoded incoming record, the channel, what mqemitter-redis publishes.
 */
const SCRIPT = `if tonumber(ARGV[2]) > 0 then
  redis.call('mset', KEYS[1], ARGV[1], KEYS[2], ARGV[2])
  for i = 4, #KEYS do redis.call('rpush', KEYS[i], KEYS[1]) end
end
redis.call('hset', KEYS[3], ARGV[3], ARGV[4])
return redis.call('publish', ARGV[5], ARGV[6])`

/**
 * A method added to aedes-persistence-redis's class, beside outgoingUpdate: what
 * outgoingEnqueueCombi and incomingStorePacket write, with their keys and encodings, and the
 * message channel's PUBLISH, in one script. (Firehose gives the class no packetTTL.)
 */
export const enqueueRecordEmitEdit: SourceEdit = {
  patch: 'qos2-published-once.ts',
  original: ANCHOR,
  replacement: `  // Firehose, packages/broker/src/aedes/qos2-published-once.ts
  async ${METHOD} (subs, packet, publisherId, received, channel, message) {
    const pktKey = packetKey(packet.brokerId, packet.brokerCounter)
    const keys = [pktKey, packetCountKey(packet.brokerId, packet.brokerCounter), incomingKey(publisherId)]
    for (const sub of subs) keys.push(outgoingKey(sub.clientId))
    const record = new Packet(received)
    record.messageId = received.messageId
    await this.#db.eval(${JSON.stringify(SCRIPT)}, keys.length, ...keys, msgpack.encode(new Packet(packet)), subs.length, received.messageId, msgpack.encode(record), channel, message)
  }

${ANCHOR}`
}

type EnqueueRecordEmit = (subs: object[], packet: AedesPublishPacket, publisherId: string, received: PublishPacket, channel: string, message: Buffer) => Promise<void>
type Enqueue = (subs: object[], packet: AedesPublishPacket) => Promise<void>

/** A client's QoS 2 publish on its way: what to write with its message channel PUBLISH. */
interface OnItsWay {
  client: Client
  received: PublishPacket
  subs: object[]
}

/**
 * Written against Aedes 1.2 (aedes.js publishFuncsQoS: enqueueOffline, emitPacket, then the
 * `published` option, where record-qos2-after-publish.ts records a QoS 2 packet id as
 * received) on aedes-persistence-redis 12.0 and mqemitter-redis 7 (`emit` PUBLISHes a
 * msgpack of `{ id, msg }` on the message's topic).
 *
 * In a cluster, a node that died after queueing or publishing a client's QoS 2 message but
 * before recording its packet id left the publisher's retransmission to the next node with
 * nothing recorded: it published the message again, under a new broker id and counter, and a
 * persistent subscriber got it twice (about 1 failover in 5). Here, on a cluster node, the
 * three writes of such a message — queued for each persistent session, the packet id recorded
 * as received, the PUBLISH on the message channel — are one Lua script: a retransmission finds
 * the id recorded exactly when the message went out, and is answered with PUBREC only.
 * Upstream: docs/upstream.md.
 */
export function publishQos2Once (broker: Aedes, recordedWithPublish: WeakSet<PublishPacket>): void {
  const internals = brokerInternals(broker)
  const persistence = internals.persistence as unknown as { outgoingEnqueueCombi: Enqueue } & Record<typeof METHOD, EnqueueRecordEmit>
  const mqemitterRedis = createRequire(createRequire(import.meta.url).resolve('mqemitter-redis'))
  const msgpack = mqemitterRedis('msgpack-lite') as { encode: (value: unknown) => Buffer }
  /** by the brokerCounter the message takes on this node */
  const onItsWay = new Map<number, OnItsWay>()

  const publish = internals.publish.bind(broker)
  internals.publish = (packet, client, done) => {
    if (typeof client !== 'object' || client === null || packet.qos !== 2 || typeof packet.messageId !== 'number' || client.id === null) {
      publish(packet, client, done)
      return
    }
    const counter = internals.counter + 1 // the one aedes-packet takes at once
    onItsWay.set(counter, { client, received: packet, subs: [] })
    publish(packet, client, (err?: Error) => {
      onItsWay.delete(counter)
      done?.(err)
    })
  }

  const enqueue = persistence.outgoingEnqueueCombi.bind(persistence)
  persistence.outgoingEnqueueCombi = async (subs: object[], packet: AedesPublishPacket): Promise<void> => {
    const mine = packet.brokerId === internals.id ? onItsWay.get(packet.brokerCounter) : undefined
    if (mine === undefined) return await enqueue(subs, packet)
    mine.subs = subs // written with the PUBLISH
  }

  const mq = internals.mq
  const emit = mq.emit.bind(mq)
  mq.emit = (message, callback) => {
    const packet = message as unknown as AedesPublishPacket
    const mine = packet.brokerId === internals.id ? onItsWay.get(packet.brokerCounter) : undefined
    if (mine === undefined) {
      emit(message, callback)
      return
    }
    onItsWay.delete(packet.brokerCounter)
    recordedWithPublish.add(mine.received)
    persistence[METHOD](mine.subs, packet, mine.client.id, mine.received, packet.topic, msgpack.encode({ id: randomUUID(), msg: packet }))
      .then(() => callback?.(), (err: Error) => {
        recordedWithPublish.delete(mine.received)
        callback?.(err)
      })
  }
}

export const qos2PublishedOnceContract: PatchContract = {
  patch: 'qos2-published-once.ts',
  package: 'aedes-persistence-redis',
  writtenAgainst: 'asyncPersistence.js (outgoingEnqueueCombi, incomingStorePacket, their key functions), with aedes.js publishFuncsQoS and mqemitter-redis emit',
  sources: {
    'asyncPersistence.js': [
      'const pktKey = packetKey(packet.brokerId, packet.brokerCounter)\n    const countKey = packetCountKey(packet.brokerId, packet.brokerCounter)',
      'await this.#db.mset(pktKey, encoded, countKey, subs.length)',
      'const listKey = outgoingKey(sub.clientId)\n      await this.#db.rpush(listKey, pktKey)',
      'const key = incomingKey(client.id)\n    const newp = new Packet(packet)\n    newp.messageId = packet.messageId\n    await this.#db.hset(key, packet.messageId, msgpack.encode(newp))'
    ]
  },
  verify: ({ source, broker }) => {
    const problems = editApplies(enqueueRecordEmitEdit, source('aedes-persistence-redis', 'asyncPersistence.js'), 'has no `async outgoingUpdate (client, packet) {` to add the method beside')
    // the Aedes side (publishFuncsQoS: enqueueOffline before emitPacket) is ordered-publishes.ts' contract too
    expect(problems, typeof brokerInternals(broker).counter === 'number', 'broker.counter is not a number')
    return problems
  }
}

/** What the script PUBLISHes must be what mqemitter-redis would have. */
export const qos2PublishedOnceChannelContract: PatchContract = {
  patch: 'qos2-published-once.ts',
  package: 'mqemitter-redis',
  writtenAgainst: 'mqemitter-redis.js (emit: PUBLISH on msg.topic of msgpack-lite\'s encoding of { id, msg })',
  sources: {
    'mqemitter-redis.js': [
      "const msgpack = require('msgpack-lite')",
      'const packet = {\n    id: hyperid(),\n    msg\n  }',
      'this.pubConn.publish(msg.topic, msgpack.encode(packet))'
    ]
  }
}
