#!/usr/bin/env python3
"""The saga and its broker under injected faults, on loopback, ending with checks.

  scripts/chaos.py                       every scenario at full size (`make chaos`)
  scripts/chaos.py --quick               small sizes (the run inside `make test`)
  scripts/chaos.py --scenario torn --seed 42    replay one scenario's schedule

Scenarios:
  embedded  queue orders, SIGKILL `fulfillment run --drain` at random moments and restart
            it each time; at the end every order is terminal and `check` is ok (no order
            charged twice, no stock drift, money and units conserved).
  kafka     the dispatcher and two instances of each step worker as separate processes on
            librdkafka's mock cluster (`fulfillment kafka-mock --inject-faults`: brokers down,
            NOT_LEADER / REQUEST_TIMED_OUT / NOT_COORDINATOR answers), stores on PostgreSQL;
            random processes are SIGKILLed and restarted; same end conditions.
  postgres  `run --drain` with its stores on PostgreSQL, whose server is stopped the way a
            crash stops it (pg_ctl -m immediate) and started again mid-run; the run waits,
            resumes and finishes with nothing lost or doubled.
  disk      the data directory on a small tmpfs (48 MiB, quick 12 MiB): a Kafka producer writes orders until the
            disk is full and gets errors; `run --drain` then fills what room is left mid-run
            and waits; once the space comes back (a remount) it finishes. Every acknowledged
            order reaches a terminal state, nothing is set aside as poison, `check` is ok.
            Needs root (mount); elsewhere it says SKIPPED.
  torn      an idempotent confluent-kafka producer writes to `fulfillment broker`, which is
            SIGKILLed mid-run; the last segment of each partition is then cut at a random
            byte past the last acknowledged batch (or given a torn half-batch when nothing
            unacknowledged was on disk), as a power cut would leave it. After a restart every
            acknowledged record is there once, the broker logged what it dropped, and the
            log takes new records after the cut.

Each scenario prints one line: its seed, its counts and the check result. The seed fixes
the schedule (kill moments, cut positions), so a failing seed replays the same faults.
Exit status: 0 when every scenario passed, 1 otherwise, 2 on a usage error.
"""
import argparse
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import pgserver

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ScenarioFailure(Exception):
    pass


def say(message):
    print(message, file=sys.stderr, flush=True)


def start(binary, arguments, log_path):
    log = open(log_path, "ab")
    return subprocess.Popen([binary] + arguments, stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def kill(process):
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()


def run_json(binary, arguments):
    done = subprocess.run([binary] + arguments, capture_output=True, timeout=600)
    try:
        return done.returncode, json.loads(done.stdout.decode() or "null")
    except json.JSONDecodeError:
        raise ScenarioFailure("`fulfillment %s` printed no JSON (exit %d): %s" % (" ".join(arguments), done.returncode, done.stderr.decode()[-2000:]))


# MARK: embedded: SIGKILL the whole saga at random moments

def embedded(binary, seed, orders, kills, work, deadline):
    rng = random.Random(seed)
    data = os.path.join(work, "embedded")
    log = os.path.join(work, "embedded.log")
    generated = subprocess.run(
        [binary, "produce", "--generate", str(orders), "--data-dir", data], capture_output=True, timeout=600)
    if generated.returncode != 0:
        raise ScenarioFailure("queueing %d orders failed: %s" % (orders, generated.stderr.decode()[-2000:]))
    run = ["run", "--drain", "--faults", "default", "--data-dir", data, "--http", "off"]
    delivered = 0
    finished_early = False
    while delivered < kills:
        if time.monotonic() > deadline:
            raise ScenarioFailure("time limit reached after %d kills" % delivered)
        process = start(binary, run, log)
        # Some kills land during start-up and recovery, most in the middle of the work.
        wait = rng.uniform(0.2, 1.0) if rng.random() < 0.25 else rng.uniform(1.0, 4.0)
        try:
            process.wait(timeout=wait)
            finished_early = True
            if process.returncode != 0:
                raise ScenarioFailure("`run --drain` exited %d before its kill (see %s)" % (process.returncode, log))
            break
        except subprocess.TimeoutExpired:
            kill(process)
            delivered += 1
    status, summary = run_json(binary, run + ["--json"])
    if status != 0:
        raise ScenarioFailure("the final `run --drain` exited %d: %s" % (status, json.dumps(summary)[:2000]))
    status, check = run_json(binary, ["check", "--data-dir", data, "--json"])
    manual = summary.get("manual_review", 0)
    problems = checked_problems(status, check, orders, manual)
    # Parked only by the injected faults: refunds that failed past their retry cap with the
    # gateway's TransientError, never by a kill (a lost or doubled message would show here).
    status, dead = run_json(binary, ["dlq", "list", "--data-dir", data, "--json"])
    parked = [t for t in dead.get("topics", []) if t.get("topic") == "orders.manual-review"]
    causes = parked[0].get("error_classes", {}) if parked else {}
    if manual and set(causes) != {"TransientError"}:
        problems.append("orders parked for manual review by %s, not only by injected refund failures" % causes)
    terminal = summary["completed"] + summary["compensated"] + summary["rejected"] + manual
    line = "embedded seed=%d orders=%d kills=%d%s completed=%d compensated=%d rejected=%d manual_review=%d terminal=%d violations=%d check=%s" % (
        seed, orders, delivered, " (drained before the last kill)" if finished_early else "",
        summary["completed"], summary["compensated"], summary["rejected"], manual, terminal,
        len(check.get("violations", [])), "ok" if not problems else "FAILED")
    return line, problems


# MARK: kafka: separate processes on librdkafka's mock cluster, killed while the cluster misbehaves

class PostgresServer(pgserver.PostgresServer):
    """The chaos runs' own PostgreSQL (scripts/pgserver.py), apart from the tests' one."""

    def __init__(self):
        super().__init__("chaos", os.environ.get("CHAOS_PG_PORT", "55439"), failure=ScenarioFailure)

    def terminal_orders(self):
        return self.scalar("SELECT COUNT(*) FROM dispatcher.orders WHERE state IN ('completed','compensated','manual_review')")


def parked_causes(postgres):
    """Why orders were parked, from their alerts: " (Timeout: 12, stuck: 3)". Parking is a
    legitimate end, so the scenarios on PostgreSQL report it rather than fail on it; a run
    that parks most of its orders says here what to look at."""
    causes = {}
    for fields in postgres.rows("SELECT message FROM dispatcher.alerts WHERE kind = 'manual_review'"):
        message = "|".join(fields)
        cause = message.split("(", 1)[1].split(":", 1)[0] if "(" in message else message.split(";", 1)[0]
        causes[cause] = causes.get(cause, 0) + 1
    return " (%s)" % ", ".join("%s: %d" % kv for kv in sorted(causes.items(), key=lambda kv: -kv[1])) if causes else ""


def stores_checked(binary, store, orders, manual_review=0):
    """`check` on the stores, with the end conditions every scenario shares."""
    status, check = run_json(binary, ["check", "--store", store, "--json"])
    return check, checked_problems(status, check, orders, manual_review)


def checked_problems(status, check, orders, manual_review):
    """Every order final: checked by `check` (completed, compensated, rejected) or parked for
    manual review, which `check` counts as in flight. A parked order is final for the saga (a
    refund failed past its retry cap; an operator takes it from orders.manual-review)."""
    problems = []
    if status != 0 or not check.get("ok"):
        problems.append("check: %s" % "; ".join(str(v) for v in check.get("violations", [])))
    if check.get("in_flight") != manual_review:
        problems.append("%s orders not final (%d parked for manual review)" % (check.get("in_flight"), manual_review))
    if check.get("orders_checked", 0) + manual_review != orders:
        problems.append("check saw %s orders and %d parked for manual review, of %d queued" % (check.get("orders_checked"), manual_review, orders))
    return problems


def kafka(binary, seed, orders, kills, faults, work, deadline):
    rng = random.Random(seed)
    postgres = PostgresServer()
    processes = {}
    try:
        store = postgres.url
        fast = os.path.join(ROOT, "config", "profiles", "fast.yaml")
        mock_log = os.path.join(work, "kafka-mock.log")
        mock = subprocess.Popen(
            [binary, "kafka-mock", "--config", fast, "--inject-faults", str(faults), "--fault-seed", str(seed), "--fault-interval-ms", "1500"],
            stdout=subprocess.PIPE, stderr=open(mock_log, "ab"), stdin=subprocess.DEVNULL)
        brokers = mock.stdout.readline().decode().strip()
        if not brokers:
            raise ScenarioFailure("kafka-mock printed no bootstrap servers (see %s)" % mock_log)
        common = ["--brokers", brokers, "--config", fast, "--store", store, "--faults", "default",
                  "--state-dir", os.path.join(work, "state"), "--status-seconds", "5"]
        produced = subprocess.run([binary, "produce", "--generate", str(orders), "--brokers", brokers, "--config", fast],
                                  capture_output=True, timeout=600)
        if produced.returncode != 0:
            raise ScenarioFailure("queueing %d orders failed: %s" % (orders, produced.stderr.decode()[-2000:]))
        roles = [("dispatcher", ["dispatcher", "--http", "off"])]
        for step in ("payment", "inventory", "shipping", "notification"):
            roles += [("%s-%d" % (step, i), ["worker", step]) for i in (1, 2)]
        arguments = dict(roles)

        def launch(name):
            processes[name] = start(binary, arguments[name] + common, os.path.join(work, name + ".log"))

        launch("dispatcher")
        time.sleep(2)  # the dispatcher makes the consumer groups' topics ready first
        for name, _ in roles[1:]:
            launch(name)
        delivered = 0
        names = [name for name, _ in roles]
        while delivered < kills:
            if time.monotonic() > deadline:
                raise ScenarioFailure("time limit reached after %d kills" % delivered)
            time.sleep(rng.uniform(0.5, 3.0))
            victim = names[rng.randrange(len(names))]
            kill(processes[victim])
            delivered += 1
            time.sleep(rng.uniform(0.2, 2.0))
            launch(victim)
            if postgres.terminal_orders() >= orders:
                break
        while postgres.terminal_orders() < orders:
            if time.monotonic() > deadline:
                raise ScenarioFailure("time limit reached with %d of %d orders terminal" % (postgres.terminal_orders(), orders))
            for name, process in processes.items():
                if process.poll() is not None:
                    raise ScenarioFailure("%s exited %d on its own (see its log in %s)" % (name, process.returncode, work))
            time.sleep(0.5)
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=60)
        mock.terminate()
        mock.wait(timeout=30)
        injected = sum(1 for line in open(mock_log, errors="replace") if line.startswith("fault "))
        manual = postgres.scalar("SELECT COUNT(*) FROM dispatcher.orders WHERE state = 'manual_review'")
        check, problems = stores_checked(binary, store, orders, manual)
        # Accepted orders whose payment request the cluster lost (acknowledged), found and
        # requested again by the watchdog: rare, but the one way an order got stuck here.
        lost_first_hops = len({line.split("order.id=", 1)[1].split()[0] for line in open(os.path.join(work, "dispatcher.log"), errors="replace")
                               if "an accepted order never started" in line and "order.id=" in line})
        line = "kafka seed=%d orders=%d processes=%d kills=%d broker_faults=%d terminal=%d manual_review=%d%s never_started_requested_again=%d violations=%d check=%s" % (
            seed, orders, len(roles), delivered, injected, postgres.terminal_orders(), manual, parked_causes(postgres) if manual else "",
            lost_first_hops, len(check.get("violations", [])), "ok" if not problems else "FAILED")
        return line, problems
    finally:
        for process in processes.values():
            kill(process)
        postgres.stop()


# MARK: postgres: the stores' server restarted under a running saga

def postgres_restart(binary, seed, orders, restarts, work, deadline):
    rng = random.Random(seed)
    postgres = PostgresServer()
    try:
        data = os.path.join(work, "data")
        generated = subprocess.run([binary, "produce", "--generate", str(orders), "--data-dir", data, "--store", postgres.url],
                                   capture_output=True, timeout=600)
        if generated.returncode != 0:
            raise ScenarioFailure("queueing %d orders failed: %s" % (orders, generated.stderr.decode()[-2000:]))
        log = os.path.join(work, "run.log")
        run = start(binary, ["run", "--drain", "--faults", "default", "--data-dir", data, "--store", postgres.url, "--http", "off", "--json"], log)
        done = 0
        while done < restarts and run.poll() is None:
            time.sleep(rng.uniform(1.0, 3.0))
            if run.poll() is not None:
                break
            postgres.restart(rng.uniform(0.5, 3.0))
            done += 1
        while run.poll() is None:
            if time.monotonic() > deadline:
                kill(run)
                raise ScenarioFailure("time limit reached with `run --drain` still going after %d restarts" % done)
            time.sleep(0.5)
        if run.returncode != 0:
            raise ScenarioFailure("`run --drain` exited %d across %d PostgreSQL restarts (see %s)" % (run.returncode, done, log))
        manual = postgres.scalar("SELECT COUNT(*) FROM dispatcher.orders WHERE state = 'manual_review'")
        check, problems = stores_checked(binary, postgres.url, orders, manual)
        line = "postgres seed=%d orders=%d server_restarts=%d manual_review=%d%s violations=%d check=%s" % (
            seed, orders, done, manual, parked_causes(postgres) if manual else "", len(check.get("violations", [])), "ok" if not problems else "FAILED")
        return line, problems
    finally:
        postgres.stop()


# MARK: disk: the data directory's file system fills up

def order_json(order_id, rng):
    items = [{"quantity": rng.randint(1, 3), "sku": "SKU-%d" % rng.randint(1, 50), "unit_price": round(rng.uniform(5, 200), 2)}
             for _ in range(rng.randint(1, 3))]
    return json.dumps({
        "currency": "USD", "customer_id": "c-%s" % order_id, "customer_tier": "standard", "email": "c@example.com", "items": items,
        "order_id": order_id, "payment": {"method": "card", "token": "tok_visa"},
        "shipping_address": {"city": "Springfield", "country": "US", "line1": "2 Main St", "name": "Customer", "postal_code": "12345"},
    }, sort_keys=True)


def used_bytes(path):
    stat = os.statvfs(path)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def disk(binary, seed, megabytes, work, deadline):
    from confluent_kafka import Producer

    rng = random.Random(seed)
    mount = os.path.join(work, "small-disk")
    os.makedirs(mount)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % megabytes, "tmpfs", mount], capture_output=True)
    if mounted.returncode != 0:
        return "disk seed=%d SKIPPED: cannot mount a small file system here (%s)" % (seed, mounted.stderr.decode().strip() or "not root"), [], True
    try:
        data = os.path.join(mount, "data")
        problems = []
        # The saga's topics, then a producer over the Kafka protocol until the disk is full.
        first = subprocess.run([binary, "produce", "--generate", "20", "--data-dir", data], capture_output=True, timeout=120)
        if first.returncode != 0:
            raise ScenarioFailure("the first orders did not fit: %s" % first.stderr.decode()[-500:])
        log = os.path.join(work, "broker.log")
        broker = start(binary, ["broker", "--data-dir", data, "--listen", "127.0.0.1:0"], log)
        acked, refused = set(), []
        try:
            bootstrap = "127.0.0.1:%d" % wait_for_port(log, broker)
            producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                 "message.timeout.ms": 5000, "linger.ms": 5, "log_level": 0})

            def delivered(error, message):
                if error is None:
                    acked.add(message.key().decode())
                else:
                    refused.append(error.str())

            sent = 0
            while not refused and time.monotonic() < deadline:
                for _ in range(500):
                    order_id = "o-disk-%d-%d" % (seed, sent)
                    producer.produce("orders", key=order_id.encode(), value=order_json(order_id, rng).encode(), on_delivery=delivered)
                    sent += 1
                producer.flush(30)
        finally:
            broker.terminate()
            broker.wait()
        if not refused:
            raise ScenarioFailure("the producer never got an error from a full disk")
        if "No space left" not in open(log, errors="replace").read() and not any("STORAGE" in r.upper() for r in refused):
            problems.append("neither the broker log nor the producer's errors say the disk is full: %s" % refused[:1])

        # A little room: `run --drain` starts, then fills the disk mid-way; space comes back later.
        subprocess.run(["mount", "-o", "remount,size=%dk" % (used_bytes(mount) // 1024 + 6 * 1024), mount], check=True)
        run_log = os.path.join(work, "run.log")
        run = start(binary, ["run", "--drain", "--data-dir", data, "--http", "off", "--json"], run_log)
        full_since = None
        while run.poll() is None and time.monotonic() < deadline:
            stat = os.statvfs(mount)
            if stat.f_bavail * stat.f_frsize < 256 * 1024:
                full_since = full_since or time.monotonic()
                if time.monotonic() - full_since > rng.uniform(3, 8):
                    break
            time.sleep(0.2)
        if full_since is None or run.poll() is not None:
            raise ScenarioFailure("the run did not fill the disk while running (exit %s, see %s)" % (run.poll(), run_log))
        subprocess.run(["mount", "-o", "remount,size=1g", mount], check=True)
        while run.poll() is None:
            if time.monotonic() > deadline:
                kill(run)
                raise ScenarioFailure("time limit reached with `run --drain` still going after the space came back")
            time.sleep(0.5)
        if run.returncode != 0:
            raise ScenarioFailure("`run --drain` exited %d after the disk filled and was freed (see %s)" % (run.returncode, run_log))
        status, check = run_json(binary, ["check", "--data-dir", data, "--json"])
        if status != 0 or not check.get("ok"):
            problems.append("check: %s" % "; ".join(str(v) for v in check.get("violations", [])))
        if check.get("in_flight") != 0:
            problems.append("%s orders still in flight" % check.get("in_flight"))
        import sqlite3
        store = sqlite3.connect("file:%s?mode=ro" % os.path.join(data, "dispatcher.sqlite"), uri=True)
        states = dict(store.execute("SELECT order_id, state FROM orders WHERE order_id LIKE 'o-disk-%'").fetchall())
        store.close()
        missing = [order for order in acked if order not in states]
        if missing:
            problems.append("%d acknowledged orders never reached the saga, e.g. %s" % (len(missing), missing[:3]))
        poisoned = subprocess.run([binary, "topics", "list", "--data-dir", data], capture_output=True).stdout.decode()
        set_aside = [line for line in poisoned.splitlines() if ".poison" in line and " 0 records" not in line]
        if set_aside:
            problems.append("records were set aside as poison for a full disk: %s" % set_aside)
        line = "disk seed=%d disk_mib=%d acknowledged=%d producer_errors=%d orders_checked=%s violations=%d check=%s" % (
            seed, megabytes, len(acked), len(refused), check.get("orders_checked"), len(check.get("violations", [])), "ok" if not problems else "FAILED")
        return line, problems, False
    finally:
        subprocess.run(["umount", "-l", mount], capture_output=True)


# MARK: torn: a power cut's torn tail on the broker's segments

BATCH_HEADER = 61  # Kafka v2 record batch header bytes
RATE = 20000  # records a second the torn scenario's producer offers: each check rereads every record


def batches(path):
    """(start, end, base_offset, last_offset) of each whole batch at the head of a segment file."""
    found = []
    with open(path, "rb") as handle:
        data = handle.read()
    position = 0
    while position + BATCH_HEADER <= len(data):
        base, length = struct.unpack_from(">qi", data, position)
        (last_delta,) = struct.unpack_from(">i", data, position + 23)
        end = position + 12 + length
        if length <= 0 or end > len(data):
            break
        found.append((position, end, base, base + last_delta))
        position = end
    return found, data


def last_segment(directory):
    logs = sorted(name for name in os.listdir(directory) if name.endswith(".log"))
    return os.path.join(directory, logs[-1])


def wait_for_port(log_path, process, timeout=20):
    marker = "Kafka protocol on 127.0.0.1:"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as handle:
            text = handle.read().decode(errors="replace")
        at = text.rfind(marker)
        if at >= 0:
            digits = ""
            for char in text[at + len(marker):]:
                if not char.isdigit():
                    break
                digits += char
            if digits and text[at + len(marker) + len(digits):].startswith(","):
                return int(digits)
        if process.poll() is not None:
            raise ScenarioFailure("the broker exited %d at start (see %s)" % (process.returncode, log_path))
        time.sleep(0.05)
    raise ScenarioFailure("the broker did not report listening (see %s)" % log_path)


def torn(binary, seed, rounds, work, deadline):
    from confluent_kafka import Consumer, Producer, TopicPartition

    rng = random.Random(seed)
    data = os.path.join(work, "torn")
    topic, partitions = "torn", 3
    created = subprocess.run(
        [binary, "topics", "create", topic, "--partitions", str(partitions), "--data-dir", data], capture_output=True, timeout=60)
    if created.returncode != 0:
        raise ScenarioFailure("creating the topic failed: %s" % created.stderr.decode())
    acked = {}  # (partition, offset) -> value
    port = 0
    cuts = dropped_total = 0
    sent = 0
    problems = []
    for round_number in range(rounds):
        if time.monotonic() > deadline:
            raise ScenarioFailure("time limit reached after %d rounds" % round_number)
        log = os.path.join(work, "torn-broker-%d.log" % round_number)
        broker = start(binary, ["broker", "--data-dir", data, "--listen", "127.0.0.1:%d" % port], log)
        port = wait_for_port(log, broker)
        bootstrap = "127.0.0.1:%d" % port

        # What the restart recovered: every acknowledged record so far, once, at its offset,
        # and a log line for each tail it cut, saying how many bytes.
        if round_number > 0:
            problems += verify(Consumer, TopicPartition, bootstrap, topic, partitions, acked, round_number)
            problems += recovery_logged(log, last_round_dropped, "round %d" % round_number)

        producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2,
            "message.timeout.ms": 4000, "retries": 1000000, "log_level": 0,
        })

        def delivered(error, message):
            if error is None:
                acked[(message.partition(), message.offset())] = message.value().decode()

        kill_at = time.monotonic() + rng.uniform(0.5, 2.5)
        round_start, round_clock = sent, time.monotonic()
        while time.monotonic() < kill_at:
            # Paced, so the kill lands while records are in flight and each check stays short.
            ahead = (sent - round_start) / RATE - (time.monotonic() - round_clock)
            if ahead > 0:
                producer.poll(min(ahead, 0.05))
                continue
            for _ in range(200):
                value = "r%d-%d" % (round_number, sent)
                try:
                    producer.produce(topic, key=("k%d" % sent).encode(), value=value.encode(), on_delivery=delivered)
                except BufferError:
                    producer.poll(0.01)
                    continue
                sent += 1
            producer.poll(0)
        kill(broker)
        producer.flush(10)  # unacknowledged records fail their delivery here; they were never promised

        last_round_dropped = 0
        for partition in range(partitions):
            path = last_segment(os.path.join(data, "%s-%d" % (topic, partition)))
            whole, bytes_ = batches(path)
            promised = max((offset for (p, offset) in acked if p == partition), default=-1)
            acked_end = 0
            for (begin, end, base, last) in whole:
                if base <= promised:
                    acked_end = end
            size = len(bytes_)
            if size > acked_end:
                cut = rng.randint(acked_end, size - 1)
                with open(path, "r+b") as handle:
                    handle.truncate(cut)
            elif whole:
                # Nothing unacknowledged reached the disk: leave a half-written next batch.
                begin, end, _, _ = whole[rng.randrange(len(whole))]
                piece = bytes_[begin:begin + rng.randint(1, end - begin - 1)]
                with open(path, "ab") as handle:
                    handle.write(piece)
                cut = size + len(piece)
            else:
                continue
            survivors = [end for (_, end, _, _) in batches(path)[0]]
            dropped = cut - (survivors[-1] if survivors else 0)
            last_round_dropped += dropped
            dropped_total += dropped
            cuts += 1

    # The last round's damage, recovered and checked, then the log takes new records.
    log = os.path.join(work, "torn-broker-final.log")
    broker = start(binary, ["broker", "--data-dir", data, "--listen", "127.0.0.1:%d" % port], log)
    try:
        port = wait_for_port(log, broker)
        bootstrap = "127.0.0.1:%d" % port
        problems += verify(Consumer, TopicPartition, bootstrap, topic, partitions, acked, rounds)
        problems += recovery_logged(log, last_round_dropped, "final")
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "log_level": 0})
        for i in range(300):
            producer.produce(topic, key=b"after", value=("after-%d" % i).encode(),
                             on_delivery=lambda error, message: error is None and acked.__setitem__((message.partition(), message.offset()), message.value().decode()))
        if producer.flush(20) != 0:
            problems.append("records produced after the recovery were not acknowledged")
        problems += verify(Consumer, TopicPartition, bootstrap, topic, partitions, acked, rounds + 1)
    finally:
        broker.terminate()
        broker.wait()
    line = "torn seed=%d rounds=%d produced=%d acknowledged=%d segment_cuts=%d dropped_bytes=%d check=%s" % (
        seed, rounds, sent + 300, len(acked), cuts, dropped_total, "ok" if not problems else "FAILED")
    return line, problems


def recovery_logged(log, dropped, label):
    """The broker's recovery lines for this start name exactly the bytes the cuts left torn."""
    logged = 0
    for line in open(log, errors="replace"):
        if "recovered a damaged segment tail" in line:
            for field in line.split():
                if field.startswith("recovery.truncated_bytes="):
                    logged += int(field.split("=", 1)[1])
    if logged != dropped:
        return ["%s: the cuts left %d torn bytes, the broker logged dropping %d" % (label, dropped, logged)]
    return []


def verify(Consumer, TopicPartition, bootstrap, topic, partitions, acked, round_number):
    """Every acknowledged record is present once at its offset; offsets have no gaps."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-verify-%d" % round_number,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest", "log_level": 0})
    ends = {}
    for partition in range(partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        ends[partition] = high
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = {}
    remaining = sum(ends.values())
    idle_until = time.monotonic() + 30
    while remaining > 0 and time.monotonic() < idle_until:
        message = consumer.poll(0.5)
        if message is None or message.error():
            continue
        key = (message.partition(), message.offset())
        if key in seen:
            consumer.close()
            return ["round %d: offset %s read twice" % (round_number, key)]
        seen[key] = message.value().decode()
        remaining -= 1
    consumer.close()
    problems = []
    for partition in range(partitions):
        offsets = sorted(o for (p, o) in seen if p == partition)
        if offsets != list(range(ends[partition])):
            problems.append("round %d: partition %d reads %d records, its end offset is %d" % (round_number, partition, len(offsets), ends[partition]))
    lost = [key for key, value in acked.items() if seen.get(key) != value]
    if lost:
        problems.append("round %d: %d acknowledged records missing or changed, e.g. %s" % (round_number, len(lost), lost[:3]))
    return problems


SCENARIOS = ["embedded", "kafka", "postgres", "torn", "disk"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only this one (repeatable); default: all")
    parser.add_argument("--seed", type=int, help="the schedule's seed (default: a random one, printed)")
    parser.add_argument("--quick", action="store_true", help="small sizes (the run inside `make test`)")
    parser.add_argument("--orders", type=int, help="orders queued by the embedded scenario (default 100000, quick 3000)")
    parser.add_argument("--kills", type=int, help="SIGKILLs of the embedded scenario (default 20, quick 4)")
    parser.add_argument("--rounds", type=int, help="kill-and-cut rounds of the torn scenario (default 10, quick 3)")
    parser.add_argument("--kafka-orders", type=int, help="orders of the kafka scenario (default 10000, quick 1000)")
    parser.add_argument("--broker-faults", type=int, help="mock-cluster faults of the kafka scenario (default 20, quick 5)")
    parser.add_argument("--pg-restarts", type=int, help="PostgreSQL restarts of the postgres scenario (default 3, quick 1)")
    parser.add_argument("--binary", default=None, help="the fulfillment executable (default: .build/release, else .build/debug)")
    parser.add_argument("--time-limit", type=float, default=1800, help="seconds for all scenarios together (default 1800)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories and logs (printed)")
    options = parser.parse_args()

    binary = options.binary
    if binary is None:
        for candidate in (".build/release/fulfillment", ".build/debug/fulfillment"):
            if os.access(os.path.join(ROOT, candidate), os.X_OK):
                binary = os.path.join(ROOT, candidate)
                break
    if binary is None or not os.access(binary, os.X_OK):
        say("chaos: no fulfillment executable; build it (make release) or pass --binary")
        return 2
    seed = options.seed if options.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    orders = options.orders or (3000 if options.quick else 100000)
    kills = options.kills if options.kills is not None else (4 if options.quick else 20)
    rounds = options.rounds or (3 if options.quick else 10)
    deadline = time.monotonic() + options.time_limit
    work = tempfile.mkdtemp(prefix="fulfillment-chaos-")
    failed = False
    kafka_orders = options.kafka_orders or (1000 if options.quick else 10000)
    broker_faults = options.broker_faults if options.broker_faults is not None else (5 if options.quick else 20)
    pg_restarts = options.pg_restarts if options.pg_restarts is not None else (1 if options.quick else 3)
    for name in options.scenario or SCENARIOS:
        scenario_dir = os.path.join(work, name)
        os.makedirs(scenario_dir)
        started = time.monotonic()
        skipped = False
        try:
            if name == "embedded":
                line, problems = embedded(binary, seed, orders, kills, scenario_dir, deadline)
            elif name == "kafka":
                line, problems = kafka(binary, seed, kafka_orders, kills, broker_faults, scenario_dir, deadline)
            elif name == "postgres":
                line, problems = postgres_restart(binary, seed, min(orders, 5000), pg_restarts, scenario_dir, deadline)
            elif name == "disk":
                line, problems, skipped = disk(binary, seed, 12 if options.quick else 48, scenario_dir, deadline)
            else:
                line, problems = torn(binary, seed, rounds, scenario_dir, deadline)
        except ScenarioFailure as failure:
            line, problems = "%s seed=%d check=FAILED" % (name, seed), [str(failure)]
        print("%s elapsed=%.0fs" % (line, time.monotonic() - started) if not skipped else line, flush=True)
        for problem in problems:
            print("  " + problem, flush=True)
        if problems:
            failed = True
            print("  replay: scripts/chaos.py --scenario %s --seed %d%s (files kept in %s)" % (
                name, seed, " --quick" if options.quick else "", scenario_dir), flush=True)
    if not failed and not options.keep:
        shutil.rmtree(work, ignore_errors=True)
    elif options.keep:
        print("files in %s" % work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
