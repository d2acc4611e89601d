import t from 'tap'
import { endpointPolicy } from '../src/index.js'

t.test('endpoint patterns: * matches any characters, but never past the end of the host', async t => {
  const allowed = endpointPolicy(['https://*.example.org/*', 'http://127.0.0.1:*', 'https://hooks.example.com/firehose'])
  const cases: Array<[string, boolean]> = [
    ['https://ci.example.org/hook', true],
    ['https://a.b.example.org/x?y=1', true],
    ['https://example.org/hook', false], // "*." needs a subdomain
    ['http://ci.example.org/hook', false], // plain http only where a pattern says so
    ['https://evil.test/.example.org/hook', false],
    ['https://ci.example.org.evil.test/hook', false],
    ['http://127.0.0.1:8000/hook', true],
    ['http://127.0.0.1/hook', false],
    ['https://hooks.example.com/firehose', true],
    ['https://hooks.example.com/firehose/more', false],
    ['https://user:pw@ci.example.org/hook', false],
    ['not a url', false]
  ]
  for (const [url, ok] of cases) t.equal(allowed(url) === undefined, ok, url)
  t.match(allowed('http://ci.example.org/hook'), /is not allowed here \(subscriptions\.push\.allowedEndpoints: https:\/\/\*\.example\.org\/\*, /)
  t.match(endpointPolicy([])('https://x.org/'), /allowedEndpoints: none/)
})
