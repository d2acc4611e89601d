/** A configuration problem: the broker refuses to start and the CLI exits with code 2. */
export class ConfigError extends Error {
  readonly code = 'FIREHOSE_CONFIG'
  constructor (readonly problems: string[], readonly source: string) {
    super(`invalid configuration (${source}):\n  - ${problems.join('\n  - ')}`)
    this.name = 'ConfigError'
  }
}
