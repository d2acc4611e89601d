import { writeFile } from 'node:fs/promises'
import { stringify } from 'yaml'
import { FirehoseProcess } from './firehose-process.js'

/** A bridge as operators run it: `firehose bridge NAME --config FILE` in a child process. */
export class BridgeProcess extends FirehoseProcess {
  constructor (readonly name: string, readonly configFile: string) {
    super()
  }

  static async write (name: string, configFile: string, config: Record<string, unknown>): Promise<BridgeProcess> {
    await writeFile(configFile, stringify(config))
    return new BridgeProcess(name, configFile)
  }

  /** Starts the process and waits for its `bridge.started` event. */
  async start (): Promise<void> {
    await this.spawnUntil(['bridge', this.name, '--config', this.configFile], 'bridge.started')
  }
}
