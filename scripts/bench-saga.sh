#!/usr/bin/env bash
# The saga benchmarks of the saga issue, each on a fresh data directory, printing each
# run's JSON summary (one line) after a label:
#   1. 100,000 orders, no faults, durable storage (fsync batch)
#   2. 100,000 orders, the default fault profile
#   3. VIP latency while a 50,000-order standard backlog drains: the backlog is queued with
#      `produce`, then `run` adds 500 VIP orders at 100/s and reports their latency.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./.build/release/fulfillment
dir=$(mktemp -d /tmp/fulfillment-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
summary() { python3 -c 'import json,sys; d=json.load(sys.stdin); c=d["check"]; d["check"]={"ok": c["ok"], "violations": len(c["violations"])}; print(json.dumps(d, sort_keys=True))'; }

echo "== run --orders 100000 --faults none"
$bin run --orders 100000 --faults none --data-dir "$dir/none" --json | summary
echo "== run --orders 100000 --faults default"
$bin run --orders 100000 --faults default --data-dir "$dir/default" --json | summary
echo "== VIP orders while a 50000-order standard backlog drains"
$bin produce --generate 50000 --vip-share 0 --data-dir "$dir/backlog" >/dev/null
$bin run --orders 500 --vip-share 1 --rate 100 --data-dir "$dir/backlog" --json | summary
