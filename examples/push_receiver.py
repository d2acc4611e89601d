#!/usr/bin/env python3
"""A Firehose push receiver: verifies each POST, then records its event.

Every push request is signed twice. Either check is enough to trust a request; this example
makes both:
  - Authorization: Bearer <JWT>, signed with the broker's key (EdDSA or RS256), verified
    against the broker's published keys (GET /.well-known/jwks.json), with `aud` this
    endpoint's audience and `iss` the broker's issuer;
  - the Standard Webhooks headers (webhook-id, webhook-timestamp, webhook-signature): an
    HMAC-SHA256 over "<id>.<timestamp>.<body>" with the subscription's secret (the whsec_...
    value shown once, when the subscription was made).
A request that fails either check gets 401. An event that passes is appended to --log as one
JSON line and answered 204, and 2xx is what acks it.

Debian: apt-get install python3-jwt python3-cryptography

  push_receiver.py --port 8000 --jwks https://firehose.example.org:8080/.well-known/jwks.json \\
      --audience https://hooks.example.org/firehose --secret whsec_... --log events.jsonl
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

TOLERANCE_SECONDS = 300  # a signed timestamp older (or newer) than this is refused: replays


def webhook_signature_ok(secret, headers, body):
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not timestamp or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # the header may carry several signatures ("v1,<b64> v1,<b64>") while a secret is rotated
    return any(hmac.compare_digest(expected, sig.split(",", 1)[1])
               for sig in signatures.split() if sig.startswith("v1,"))


def make_handler(args, jwks):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            auth = self.headers.get("authorization", "")
            try:
                if not auth.startswith("Bearer "):
                    raise jwt.InvalidTokenError("no bearer token")
                token = auth[len("Bearer "):]
                key = jwks.get_signing_key_from_jwt(token).key
                claims = jwt.decode(token, key, algorithms=["EdDSA", "RS256"],
                                    audience=args.audience, issuer=args.issuer)
            except jwt.PyJWTError as err:
                return self.answer(401, f"bad token: {err}")
            if not webhook_signature_ok(args.secret, self.headers, body):
                return self.answer(401, "bad webhook signature")
            record = {"webhook-id": self.headers["webhook-id"], "subscription": claims.get("subscription"),
                      "body": json.loads(body)}
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(record) + "\n")
            self.answer(204, "")

        def answer(self, status, text):
            data = text.encode()
            self.send_response(status)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            if status >= 400:
                print(f"refused: {text}", file=sys.stderr, flush=True)

        def log_message(self, *_):
            pass

    return Handler


def main():
    parser = argparse.ArgumentParser(description="Verify and record Firehose push requests.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--jwks", required=True, help="the broker's /.well-known/jwks.json URL")
    parser.add_argument("--audience", required=True, help="the subscription's audience (default there: its endpoint)")
    parser.add_argument("--issuer", default="firehose", help="the broker's subscriptions.push.issuer")
    parser.add_argument("--secret", required=True, help="the subscription's whsec_... secret")
    parser.add_argument("--log", required=True, help="file the verified events are appended to")
    args = parser.parse_args()
    jwks = jwt.PyJWKClient(args.jwks)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args, jwks))
    print(f"listening on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
