#!/usr/bin/env python3
"""Scale-out benchmark: the saga as separate processes on librdkafka's mock cluster, with one
and then two instances of each step worker, and the orders per second each setup finishes.

  scripts/bench-scale-out.py [--orders N] [--rounds R] [--instances 1,2] [--json]

Each round, for each instance count in turn (the order alternates from round to round):
a fresh `fulfillment kafka-mock` and a fresh PostgreSQL database (scripts/test-postgres.sh,
on its own port), N generated orders queued with `produce --generate` first, then the
dispatcher and K instances of each of the four step workers started together. The clock
runs from the start of the processes until every order is final in the dispatcher's store
(completed, compensated, rejected or parked for manual review), and `check` must pass.
Besides that whole-run rate, the steady rate: the middle 80 % of the orders (from the 10th to
the 90th percentile of their finish times) over the time they took, which leaves out the
processes' start and consumer-group joins (seconds on the mock cluster). Prints a table of
medians, or one JSON object with --json.

Everything runs on this machine: with 2 cores, two instances of each worker share the same
two cores as one instance does; the figure says what the extra processes cost or gain here,
not on a cluster of machines.
"""
import argparse, json, os, shutil, statistics, subprocess, sys, tempfile, time

import pgserver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, ".build", "release", "fulfillment")
STEPS = ("payment", "inventory", "shipping", "notification")


def one_run(postgres, orders, instances, work, round_number, quiet):
    store = postgres.fresh_database("bench_scale_out")
    logs = os.path.join(work, "round%d-k%d" % (round_number, instances))
    os.makedirs(logs)
    mock = subprocess.Popen([BINARY, "kafka-mock"], stdout=subprocess.PIPE,
                            stderr=open(os.path.join(logs, "kafka-mock.log"), "ab"), stdin=subprocess.DEVNULL)
    processes = []
    try:
        brokers = mock.stdout.readline().decode().strip()
        if not brokers:
            raise SystemExit("kafka-mock printed no bootstrap servers (see %s)" % logs)
        produced = subprocess.run([BINARY, "produce", "--generate", str(orders), "--brokers", brokers], capture_output=True, timeout=900)
        if produced.returncode != 0:
            raise SystemExit("queueing %d orders failed: %s" % (orders, produced.stderr.decode()[-2000:]))
        common = ["--brokers", brokers, "--store", store, "--faults", "none", "--state-dir", os.path.join(logs, "state")]
        roles = [("dispatcher", ["dispatcher", "--http", "off"])]
        for step in STEPS:
            roles += [("%s-%d" % (step, i), ["worker", step]) for i in range(1, instances + 1)]
        started = time.monotonic()
        started_wall_ms = time.time() * 1000
        for name, arguments in roles:
            processes.append((name, subprocess.Popen([BINARY] + arguments + common, stdin=subprocess.DEVNULL,
                                                     stdout=open(os.path.join(logs, name + ".log"), "ab"), stderr=subprocess.STDOUT)))
        final = "SELECT COUNT(*) FROM dispatcher.orders WHERE state IN ('completed','compensated','rejected','manual_review')"
        done, last_shown = 0, 0.0
        while done < orders:
            time.sleep(0.5)
            for name, process in processes:
                if process.poll() is not None:
                    raise SystemExit("%s exited %d on its own (see %s)" % (name, process.returncode, logs))
            done = postgres.scalar(final, store)
            if not quiet and time.monotonic() - last_shown > 5:
                last_shown = time.monotonic()
                print("  %d instance(s): %d/%d orders final after %.0f s" % (instances, max(done, 0), orders, last_shown - started), file=sys.stderr, flush=True)
            if time.monotonic() - started > 1800:
                raise SystemExit("%d instance(s): only %d of %d orders final after 30 minutes" % (instances, done, orders))
        seconds = time.monotonic() - started
        # The steady rate: the middle 80 % of the orders over the time they took to finish,
        # which leaves out the start (processes starting, consumer groups joining) and the
        # last stragglers.
        finished = "SELECT percentile_disc(%s) WITHIN GROUP (ORDER BY finished_at) FROM dispatcher.orders WHERE finished_at IS NOT NULL"
        p10, p90 = postgres.scalar(finished % "0.1", store), postgres.scalar(finished % "0.9", store)
        first = postgres.scalar("SELECT MIN(finished_at) FROM dispatcher.orders", store)
        if min(p10, p90, first) < 0:
            raise SystemExit("could not read the orders' finish times from %s" % store)
    finally:
        for _, process in processes:
            process.terminate()
        for _, process in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        mock.terminate()
        mock.wait(30)
    check = subprocess.run([BINARY, "check", "--store", store, "--json"], capture_output=True, timeout=300)
    checked = json.loads(check.stdout or b"{}")
    if check.returncode != 0 or not checked.get("ok"):
        raise SystemExit("check failed after %d instance(s): %s" % (instances, check.stdout.decode()[-2000:]))
    return {"instances": instances, "processes": len(roles) + 1, "seconds": seconds, "orders_per_s": orders / seconds,
            "steady_orders_per_s": 0.8 * orders / max((p90 - p10) / 1000, 0.001),
            "first_final_after_s": (first - started_wall_ms) / 1000}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", default="1,2", help="instance counts to compare, e.g. 1,2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not os.access(BINARY, os.X_OK):
        raise SystemExit("build first: swift build -c release (missing %s)" % BINARY)
    counts = [int(k) for k in args.instances.split(",")]
    runs = {k: [] for k in counts}
    postgres = pgserver.PostgresServer("bench", os.environ.get("BENCH_PG_PORT", "55441"), failure=SystemExit)
    work = tempfile.mkdtemp(prefix="bench-scale-out-")
    try:
        for round_number in range(args.rounds):
            order = counts[round_number % len(counts):] + counts[:round_number % len(counts)]
            for k in order:
                if not args.json:
                    print("round %d/%d: %d instance(s) of each worker, %d orders" % (round_number + 1, args.rounds, k, args.orders), file=sys.stderr, flush=True)
                runs[k].append(one_run(postgres, args.orders, k, work, round_number + 1, args.json))
                if not args.json:
                    run = runs[k][-1]
                    print("  %.0f orders/s (%.1f s); steady %.0f orders/s; first order final after %.1f s"
                          % (run["orders_per_s"], run["seconds"], run["steady_orders_per_s"], run["first_final_after_s"]), file=sys.stderr, flush=True)
    except BaseException:
        print("the processes' logs are kept in %s" % work, file=sys.stderr)
        postgres.stop()
        raise
    postgres.stop()
    shutil.rmtree(work, ignore_errors=True)
    results = {str(k): {"orders_per_s": statistics.median(r["orders_per_s"] for r in rs), "processes": rs[0]["processes"],
                        "rounds": [round(r["orders_per_s"], 1) for r in rs],
                        "steady_orders_per_s": statistics.median(r["steady_orders_per_s"] for r in rs),
                        "steady_rounds": [round(r["steady_orders_per_s"], 1) for r in rs],
                        "first_final_after_s": statistics.median(r["first_final_after_s"] for r in rs)} for k, rs in runs.items()}
    summary = {"orders": args.orders, "faults": "none", "cluster": "librdkafka mock (kafka-mock)", "store": "postgresql",
               "cores": os.cpu_count(), "results": results}
    if len(counts) >= 2:
        summary["ratio"] = results[str(counts[1])]["orders_per_s"] / results[str(counts[0])]["orders_per_s"]
        summary["steady_ratio"] = results[str(counts[1])]["steady_orders_per_s"] / results[str(counts[0])]["steady_orders_per_s"]
    if args.json:
        print(json.dumps(summary))
        return
    print("medians of %d rounds, %d orders, faults none, librdkafka mock cluster, PostgreSQL stores, %d cores" % (args.rounds, args.orders, os.cpu_count()))
    print("orders/s: all orders over the whole run; steady: the middle 80 % of the orders over the time they took")
    print("%-20s %9s  %-20s %9s  %-20s %s" % ("instances per step", "orders/s", "rounds", "steady", "rounds", "first final after"))
    for k, r in results.items():
        print("%-20s %9.0f  %-20s %9.0f  %-20s %.1f s  (%d processes with the mock cluster)" % (
            k, r["orders_per_s"], " / ".join("%.0f" % x for x in r["rounds"]),
            r["steady_orders_per_s"], " / ".join("%.0f" % x for x in r["steady_rounds"]), r["first_final_after_s"], r["processes"]))
    if "ratio" in summary:
        print("%s instances / %s: x%.2f over the whole run, x%.2f steady" % (counts[1], counts[0], summary["ratio"], summary["steady_ratio"]))


if __name__ == "__main__":
    main()
