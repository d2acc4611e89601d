/** What an HTTP call to the broker answered: status, text, JSON when it parses, headers. */
export interface ApiAnswer { status: number, json: any, text: string, headers: Headers }

/**
 * Calls the broker's HTTP API (Node's fetch) as one of `users` (HTTP Basic) or anonymously. A
 * body that is an object is sent as JSON; a string as given, labelled JSON (to send broken JSON)
 * unless `headers` say otherwise; bytes as given, with the headers given.
 */
export function httpApi<U extends string> (base: () => string, users: Record<U, string>) {
  const auth = (user: U): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${users[user]}`).toString('base64')}` })
  return async (user: U | undefined, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiAnswer> => {
    const raw = typeof body === 'string' || body instanceof Uint8Array
    const res = await fetch(base() + path, {
      method,
      headers: { ...(user === undefined ? {} : auth(user)), ...(body === undefined || body instanceof Uint8Array ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: raw ? body : JSON.stringify(body) })
    })
    const text = await res.text()
    let json: unknown
    try { json = JSON.parse(text) } catch { json = undefined }
    return { status: res.status, json, text, headers: res.headers }
  }
}

/** One history entry as GET /v1/history gives it. */
export interface HistoryEntry { offset: number, timestamp: number, topic: string, payload: unknown, user?: string }

/** Every entry of the journal on `topics` (pages of 1000), as `user` reads them. */
export async function readHistory<U extends string> (api: ReturnType<typeof httpApi<U>>, user: U | undefined, topics: string[]): Promise<HistoryEntry[]> {
  const all: HistoryEntry[] = []
  let path: string | null = `/v1/history?${topics.map(t => `topic=${encodeURIComponent(t)}`).join('&')}&limit=1000`
  while (path !== null) {
    const page = await api(user, 'GET', path)
    if (page.status !== 200) throw new Error(`GET ${path}: ${page.status} ${page.text}`)
    all.push(...(page.json.events as HistoryEntry[]))
    path = page.json.next as string | null
  }
  return all
}
