#!/usr/bin/env bash
# The saga benchmarks of the saga issue, each on a fresh data directory, printing each
# run's JSON summary (one line) after a label, for ROUNDS rounds (default 3), then the
# medians of the rounds as one JSON line:
#   1. 100,000 orders, no faults, durable storage (fsync batch)
#   2. 100,000 orders, the default fault profile
#   3. VIP latency while a 50,000-order standard backlog drains: the backlog is queued with
#      `produce`, then `run` adds 500 VIP orders at 100/s and reports their latency.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./.build/release/fulfillment
rounds=${ROUNDS:-3}
dir=$(mktemp -d /tmp/fulfillment-bench.XXXXXX)
trap 'rm -rf "$dir"' EXIT
summary() { python3 -c 'import json,sys; d=json.load(sys.stdin); c=d["check"]; d["check"]={"ok": c["ok"], "violations": len(c["violations"])}; print(json.dumps(d, sort_keys=True))'; }

for round in $(seq 1 "$rounds"); do
    echo "== round $round/$rounds: run --orders 100000 --faults none"
    $bin run --orders 100000 --faults none --data-dir "$dir/none" --json | summary | tee -a "$dir/none.jsonl"
    echo "== round $round/$rounds: run --orders 100000 --faults default"
    $bin run --orders 100000 --faults default --data-dir "$dir/default" --json | summary | tee -a "$dir/default.jsonl"
    echo "== round $round/$rounds: VIP orders while a 50000-order standard backlog drains"
    $bin produce --generate 50000 --vip-share 0 --data-dir "$dir/backlog" >/dev/null
    $bin run --orders 500 --vip-share 1 --rate 100 --data-dir "$dir/backlog" --json | summary | tee -a "$dir/vip.jsonl"
    rm -rf "$dir/none" "$dir/default" "$dir/backlog"
done
echo "== medians of $rounds rounds"
python3 - "$dir" <<'PY'
import json, statistics, sys
def rates(name):
    return [json.loads(line)["orders_per_s"] for line in open("%s/%s.jsonl" % (sys.argv[1], name))]
none, default = rates("none"), rates("default")
print(json.dumps({"rounds": len(none),
                  "faults_none_orders_per_s": round(statistics.median(none)), "faults_none_rounds": [round(r) for r in none],
                  "faults_default_orders_per_s": round(statistics.median(default)), "faults_default_rounds": [round(r) for r in default],
                  "default_to_none": round(statistics.median(default) / statistics.median(none), 3)}, sort_keys=True))
PY
