import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt'

/** An mqtt.js client that the test's teardown ends. */
export async function connect (url: string, options: IClientOptions = {}): Promise<MqttClient> {
  return await connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
}

/** Collects messages as `topic payload`. */
export function collect (client: MqttClient): string[] {
  const got: string[] = []
  client.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`))
  return got
}
