#!/usr/bin/env python3
"""A Firehose pull listener, standard library only: pulls a subscription's events, prints each
as a JSON line, and acks a batch once it is printed (an event is never acked before it is out).

What was pulled and not acked (this process killed mid-batch) comes back after the
subscription's ackDeadline. The password comes from the environment, never the command line.

  FIREHOSE_PASSWORD=... pull_listener.py --url https://firehose.example.org:8080 \\
      --user ci --subscription ci-merges [--count N]
"""
import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(args, path, body):
    token = base64.b64encode(f"{args.user}:{os.environ['FIREHOSE_PASSWORD']}".encode()).decode()
    request = urllib.request.Request(
        args.url.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
        headers={"authorization": f"Basic {token}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def main():
    parser = argparse.ArgumentParser(description="Pull, print and ack a Firehose subscription's events.")
    parser.add_argument("--url", required=True, help="the broker's WebSocket listener (https://HOST:8080)")
    parser.add_argument("--user", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--count", type=int, help="stop after this many events")
    args = parser.parse_args()
    base = f"/v1/subscriptions/{args.subscription}"
    printed = 0
    while args.count is None or printed < args.count:
        want = 100 if args.count is None else min(100, args.count - printed)
        try:
            batch = call(args, f"{base}/pull", {"max": want, "waitSeconds": 30})
            for message in batch:
                event = {key: value for key, value in message.items() if key != "ackId"}
                print(json.dumps(event), flush=True)
            if batch:
                call(args, f"{base}/ack", {"ackIds": [m["ackId"] for m in batch]})
            printed += len(batch)
        except urllib.error.HTTPError as err:
            if 400 <= err.code < 500 and err.code != 429:
                sys.exit(f"refused: {err.code} {err.read().decode().strip()}")
            print(f"broker answered {err.code}; trying again", file=sys.stderr)
            time.sleep(2)
        except (urllib.error.URLError, OSError) as err:
            print(f"cannot reach the broker ({err}); trying again", file=sys.stderr)
            time.sleep(2)


if __name__ == "__main__":
    main()
