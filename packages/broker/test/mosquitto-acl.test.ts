import t from 'tap'
import { AclPolicy, parseAclFile } from '../src/auth/mosquitto-acl.js'

const FILE = `# the firehose policy
topic read #
topic read $SYS/#

user gerrit
topic read #
topic readwrite gerrit/#
topic write firehose/bridges/gerrit

user restricted
topic read public/#
topic deny public/secret/#

pattern write clients/%c/#
pattern readwrite users/%u/inbox
`

const { acl, problems } = parseAclFile(FILE)
const policy = new AclPolicy(acl)
const anon = policy.rulesFor({ username: undefined, clientId: 'anon-1' })
const gerrit = policy.rulesFor({ username: 'gerrit', clientId: 'gerrit-bridge' })
const restricted = policy.rulesFor({ username: 'restricted', clientId: 'r1' })

t.same(problems, [])

t.test('anonymous clients read everything and publish nothing (but their own pattern topics)', async t => {
  t.equal(anon.readsEverything, true)
  t.equal(anon.canSubscribe('#'), true)
  t.equal(anon.canSubscribe('$SYS/#'), true)
  t.equal(anon.canReceive('$SYS/broker/uptime'), true)
  t.equal(anon.canPublish('gerrit/x'), false)
  t.equal(anon.canPublish('users//inbox'), false, 'a %u pattern never applies without a user name')
  t.equal(anon.canPublish('clients/anon-1/status'), true, '%c patterns apply to everyone')
  t.equal(anon.canPublish('clients/anon-2/status'), false)
})

t.test('a bridge writes only its own prefix and status topic', async t => {
  t.equal(gerrit.canPublish('gerrit/openstack/nova/comment-added'), true)
  t.equal(gerrit.canPublish('gerrit'), true, 'gerrit/# covers its parent')
  t.equal(gerrit.canPublish('firehose/bridges/gerrit'), true)
  t.equal(gerrit.canPublish('firehose/bridges/launchpad'), false)
  t.equal(gerrit.canPublish('launchpad/nova/new/1'), false)
  t.equal(gerrit.canPublish('users/gerrit/inbox'), true)
  t.equal(gerrit.canSubscribe('$SYS/#'), false, 'users do not inherit the anonymous rules')
  t.equal(gerrit.canSubscribe('launchpad/#'), true, 'reads everything outside $')
})

t.test('deny wins; a subscription overlapping a read rule is granted and filtered per message', async t => {
  t.equal(restricted.readsEverything, false)
  t.equal(restricted.canSubscribe('public/#'), true)
  t.equal(restricted.canSubscribe('#'), true, 'overlaps public/#')
  t.equal(restricted.canSubscribe('private/#'), false)
  t.equal(restricted.canSubscribe('public/secret/#'), false, 'entirely denied')
  t.equal(restricted.canSubscribe('public/secret/x'), false)
  t.equal(restricted.canReceive('public/news'), true)
  t.equal(restricted.canReceive('public/secret/plans'), false)
  t.equal(restricted.canReceive('private/x'), false)
})

t.test('patterns refuse wildcard and level injection through user names and client ids', async t => {
  const sneaky = policy.rulesFor({ username: 'a/b', clientId: '#' })
  t.equal(sneaky.canPublish('clients/#/x'), false)
  t.equal(sneaky.canPublish('clients/anything/x'), false)
  t.equal(sneaky.canPublish('users/a/b/inbox'), false)
})

t.test('malformed lines are reported by number and skipped', async t => {
  const bad = parseAclFile('topic read #\nfrobnicate x\ntopic\ntopic read a/#/b\npattern write x/%u+/y\nuser\ntopic read leaked\nuser ok\ntopic deny\n')
  t.same(bad.problems.map(p => p.line), [2, 3, 4, 5, 6, 9])
  t.same(bad.acl.anonymous, [{ access: 'read', filter: '#' }], 'a topic line under a nameless user line goes to no one')
  t.same(bad.acl.users.get('ok'), [])
})

t.test('a topic line without an access word is readwrite, and filters may contain spaces', async t => {
  const { acl } = parseAclFile('user u\ntopic a b/c\ntopic deny\ttabbed topic\n')
  t.same(acl.users.get('u'), [{ access: 'readwrite', filter: 'a b/c' }, { access: 'deny', filter: 'tabbed topic' }])
})
