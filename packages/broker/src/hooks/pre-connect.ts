import type { Client, ConnectPacket } from 'aedes'
import { remoteAddress, type HookContext } from './context.js'

/**
 * Marks CONNECTs whose client identifier must be refused with CONNACK 2; the refusal
 * itself is sent by `authenticate`, the first Aedes step that can answer with a code.
 * Stock Aedes accepts a zero-length id with clean session 0 and gives it a random id,
 * which silently turns a persistent session into a throwaway one.
 *
 * A will QoS of 3 is a protocol violation [MQTT-3.1.2-14]: the connection is closed, as
 * Mosquitto does (Aedes accepted it, and the will, when it fired, made the writer fail on
 * every QoS 1/2 subscriber it reached, disconnecting them).
 */
export function createPreConnect (ctx: HookContext) {
  return function preConnect (client: Client, packet: ConnectPacket, callback: (error: Error | null, success: boolean) => void): void {
    const willQos = (packet.will as { qos?: number } | undefined)?.qos
    if (willQos !== undefined && (willQos < 0 || willQos > 2)) {
      ctx.stats.connectsRefused++
      ctx.logger.info({ event: 'client.refused', ip: remoteAddress(client), reason: `will QoS ${willQos}` }, 'connect refused: will QoS must be 0, 1 or 2')
      return callback(new Error(`will QoS ${willQos} [MQTT-3.1.2-14]`), false)
    }
    const id = packet.clientId ?? ''
    const reason = id === '' && !packet.clean
      ? 'zero-length client id with clean session 0' // [MQTT-3.1.3-8]
      : id === '' && packet.protocolVersion === 3
        ? 'zero-length client id in MQTT 3.1' // MQTT 3.1 requires 1 to 23 characters
        : id.length > ctx.limits.maxClientIdLength
          ? `client id longer than limits.maxClientIdLength (${ctx.limits.maxClientIdLength})`
          : undefined
    if (reason !== undefined) {
      ctx.rejectedIds.add(client)
      ctx.logger.info({ ip: remoteAddress(client), reason }, 'connect refused: identifier rejected')
    }
    callback(null, true)
  }
}
