import t from 'tap'
import { filterCovers, filtersIntersect, isValidFilter, topicMatches } from '../src/index.js'

t.test('topicMatches', async t => {
  const cases: Array<[string, string, boolean]> = [
    ['#', 'a/b', true], ['#', '$SYS/x', false], ['+/x', '$SYS/x', false], ['$SYS/#', '$SYS/broker/uptime', true],
    ['a/#', 'a', true], ['a/#', 'a/b/c', true], ['a/+', 'a/b', true], ['a/+', 'a/b/c', false], ['a/+', 'a', false],
    ['a/+/c', 'a//c', true], ['a/b', 'a/b', true], ['a/b', 'a/B', false], ['+', '', true], ['+/+', '/x', true]
  ]
  for (const [filter, topic, expected] of cases) t.equal(topicMatches(filter, topic), expected, `${filter} ~ ${topic}`)
})

t.test('filterCovers', async t => {
  const cases: Array<[string, string, boolean]> = [
    ['#', 'gerrit/#', true], ['#', '#', true], ['#', '$SYS/#', false], ['$SYS/#', '$SYS/broker/+', true],
    ['gerrit/#', '#', false], ['a/+', 'a/b', true], ['a/+', 'a/+', true], ['a/b', 'a/+', false],
    ['a/+', 'a/#', false], ['a/#', 'a', true], ['a/b', 'a/b', true], ['+/b', 'x/b', true]
  ]
  for (const [outer, inner, expected] of cases) t.equal(filterCovers(outer, inner), expected, `${outer} covers ${inner}`)
})

t.test('filtersIntersect', async t => {
  const cases: Array<[string, string, boolean]> = [
    ['#', 'gerrit/x', true], ['gerrit/#', '#', true], ['#', '$SYS/#', false], ['+/x', '$SYS/x', false],
    ['a/+', 'a/b/c', false], ['a/#', 'a', true], ['a/+/c', 'a/b/+', true], ['a/b', 'a/c', false], ['$SYS/#', '$SYS/broker/#', true]
  ]
  for (const [a, b, expected] of cases) {
    t.equal(filtersIntersect(a, b), expected, `${a} meets ${b}`)
    t.equal(filtersIntersect(b, a), expected, `${b} meets ${a}`)
  }
})

t.test('isValidFilter', async t => {
  for (const f of ['#', 'a/#', '+', 'a/+/b', '$SYS/#', 'a b']) t.equal(isValidFilter(f), true, f)
  for (const f of ['', 'a/#/b', 'a#', 'a/b+', '#/a']) t.equal(isValidFilter(f), false, f)
})
