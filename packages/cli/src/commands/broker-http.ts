import { EXIT } from '@firehose/runtime'

/** Ends a command with an exit code after a message (usage, a refusal from the broker). */
export class Stop extends Error {
  constructor (readonly code: number, message: string) { super(message) }
}

/** The broker's WebSocket listener, as --url or FIREHOSE_URL gives it: http:// or https://. */
export function brokerUrl (text: string, key = '--url'): URL {
  let base: URL
  try {
    base = new URL(text)
  } catch {
    throw new Stop(EXIT.usage, `${key}: ${JSON.stringify(text)} is not a URL (http://firehose.example.org, https://firehose.example.org:8080)`)
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Stop(EXIT.usage, `${key}: ${text} is not http:// or https://`)
  return base
}

export const basicAuth = (username: string, password: string): string => `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`

/**
 * A request to the broker's HTTP API. Refusals the user must act on (400, 401, 403, 404, 409,
 * 413) end the command with exit code 2; the broker unreachable or failing, with 1.
 */
export async function request (url: URL, init: RequestInit = {}): Promise<Response> {
  let response: Response
  try {
    response = await fetch(url, init)
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err
    throw new Stop(EXIT.failure, `cannot reach ${url.origin}: ${(err as { cause?: Error }).cause?.message ?? (err as Error).message}`)
  }
  if (response.status >= 300) {
    const text = (await response.text()).trim()
    throw new Stop(response.status >= 400 && response.status < 500 && response.status !== 429 ? EXIT.usage : EXIT.failure, `${response.status}: ${text}`)
  }
  return response
}

/** Writes to stdout, waiting when it is full (a slow pipe). */
export async function write (text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise(resolve => process.stdout.once('drain', resolve))
}
