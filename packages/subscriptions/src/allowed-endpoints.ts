/**
 * The operator's endpoint patterns (`subscriptions.push.allowedEndpoints`): URL prefixes where
 * `*` matches any characters — within the host only up to its end, so that
 * `https://*.example.org/*` cannot be met by `https://evil.test/.example.org/`. Plain http is
 * allowed only where a pattern says `http://`. Returns the check: undefined, or why not.
 */
export function endpointPolicy (patterns: readonly string[]): (endpoint: string) => string | undefined {
  const compiled = patterns.map(pattern => ({ pattern, ...compile(pattern) }))
  return endpoint => {
    let url: URL
    try {
      url = new URL(endpoint)
    } catch {
      return `${JSON.stringify(endpoint)} is not a URL`
    }
    if (url.username !== '' || url.password !== '') return 'a URL with a user or password in it is not taken (the request is signed instead)'
    const origin = `${url.protocol}//${url.host}`
    const rest = `${url.pathname}${url.search}`
    if (compiled.some(c => c.origin.test(origin) && c.rest.test(rest))) return undefined
    return `${url.href} is not allowed here (subscriptions.push.allowedEndpoints: ${patterns.length === 0 ? 'none' : patterns.join(', ')})`
  }
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

function compile (pattern: string): { origin: RegExp, rest: RegExp } {
  const m = /^([a-z]+:\/\/)([^/]*)(.*)$/i.exec(pattern)
  if (m === null) throw new Error(`"${pattern}" is not a URL pattern (https://*.example.org/*)`)
  const [, scheme, host, path] = m
  const hostRe = host!.split('*').map(escape).join('[^/@]*')
  // a pattern without a path allows any path; "*" in the path matches anything
  const pathRe = path === '' ? '(?:/.*)?' : path!.split('*').map(escape).join('.*')
  return { origin: new RegExp(`^${escape(scheme!.toLowerCase())}${hostRe}$`, 'i'), rest: new RegExp(`^${pathRe}$`) }
}
