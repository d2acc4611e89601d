import { randomBytes } from 'node:crypto'
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { webhookKey, webhookSignature } from '../src/webhook-signature.js'

// The broker signs with node:crypto; receivers verify with any Standard Webhooks library. The
// reference one (standardwebhooks) signs the same bytes to the same header, and verifies ours.

t.test('the same signature as the standardwebhooks package, for bodies of every kind', async t => {
  for (let i = 0; i < 50; i++) {
    const secret = `whsec_${randomBytes(24).toString('base64')}`
    const id = `sub-${i}-${randomBytes(4).readUInt32BE()}`
    const at = new Date(1_795_000_000_000 + i * 1_234_567)
    const body = Buffer.from(JSON.stringify({ i, text: 'é ✓ \n "quoted"', data: randomBytes(40).toString('base64') }))
    const ours = webhookSignature(webhookKey(secret), id, Math.floor(at.getTime() / 1000), body)
    t.equal(ours, new Webhook(secret).sign(id, at, body), `body ${i}`)
  }
})

t.test('the reference library verifies what the broker signs, and refuses it under another secret', async t => {
  const secret = `whsec_${randomBytes(24).toString('base64')}`
  const body = Buffer.from('{"message":{"data":"e30="}}')
  const timestamp = Math.floor(Date.now() / 1000)
  const headers = { 'webhook-id': 'x-1', 'webhook-timestamp': String(timestamp), 'webhook-signature': webhookSignature(webhookKey(secret), 'x-1', timestamp, body) }
  t.same(new Webhook(secret).verify(body.toString(), headers), JSON.parse(body.toString()))
  t.throws(() => new Webhook(`whsec_${randomBytes(24).toString('base64')}`).verify(body.toString(), headers), /No matching signature/)
})
