/** The events-log plugin's REST API: `GET /a/plugins/events-log/events/?t1=yyyy-MM-dd HH:mm:ss`. */
export class EventsLogClient {
  constructor (private readonly options: { url: string, username: string, password: string, timeoutMs?: number }) {}

  /** Every event since `since`, as the lines the plugin returned; `unavailable` when the server has no plugin. */
  async since (since: Date): Promise<{ lines: string[] } | { unavailable: string }> {
    const base = this.options.url.replace(/\/+$/, '')
    const url = `${base}/a/plugins/events-log/events/?t1=${encodeURIComponent(formatT1(since))}`
    const auth = Buffer.from(`${this.options.username}:${this.options.password}`).toString('base64')
    const res = await fetch(url, { headers: { authorization: `Basic ${auth}`, accept: 'application/json' }, signal: AbortSignal.timeout(this.options.timeoutMs ?? 30000) })
    if (res.status === 404) return { unavailable: 'the server has no events-log plugin (404)' }
    if (!res.ok) throw new Error(`events-log answered ${res.status} ${res.statusText}`)
    const body = await res.text()
    return { lines: body.split('\n').map(l => l.trim()).filter(l => l !== '' && l !== ")]}'") }
  }
}

/** `yyyy-MM-dd HH:mm:ss`, in UTC. */
export function formatT1 (date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ')
}
