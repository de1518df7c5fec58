#!/usr/bin/env python3
"""The client side of the broker-restart test (confluent-kafka), in three steps the Swift test
runs around killing and restarting `fulfillment broker`:

  restart_client.py produce   BOOTSTRAP TOPIC N ACKED_FILE   idempotent, acks=all, paced over ~8 s;
                                                              writes every acknowledged key, and checks
                                                              the acknowledgements paused (the broker was
                                                              down) with some before and some after
  restart_client.py consume   BOOTSTRAP TOPIC GROUP ACKED_FILE   every acknowledged key is there,
                                                              none twice; commits
  restart_client.py committed BOOTSTRAP TOPIC GROUP          the group's commits are the end offsets
"""
import sys, time
from confluent_kafka import Consumer, Producer, TopicPartition


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")


mode, bootstrap, topic = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "produce":
    count, acked_file = int(sys.argv[4]), sys.argv[5]
    acked, failed, times = [], [], []

    def report(error, message):
        (failed if error else acked).append(str(error) if error else message.key().decode())
        times.append(time.time())

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                  "message.timeout.ms": 120000, "reconnect.backoff.max.ms": 500})
    start = time.time()
    for n in range(count):
        p.produce(topic, key=f"k-{n}", value=f"value-{n}", on_delivery=report)
        if n % 200 == 0:
            p.poll(0)
            # Paced: the broker is killed and restarted while this runs.
            time.sleep(max(0, start + 8.0 * n / count - time.time()))
    left = p.flush(120)
    with open(acked_file, "w") as out:
        out.write("\n".join(acked) + "\n")
    print(f"acknowledged {len(acked)}, failed {len(failed)}, unflushed {left}")
    check(not failed and left == 0 and len(acked) == count, f"failures: {failed[:3]}")
    gaps = [(times[i + 1] - times[i], i + 1) for i in range(len(times) - 1)]
    gap, before = max(gaps)
    print(f"longest pause between acknowledgements {gap:.1f} s, after {before} of {count}")
    check(gap >= 1.0 and 0 < before < count, "the broker was not down mid-run")
elif mode == "consume":
    group, acked_file = sys.argv[4], sys.argv[5]
    acked = set(open(acked_file).read().split())
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    seen, twice = set(), 0
    deadline = time.time() + 90
    while not acked <= seen and time.time() < deadline:
        messages = c.consume(1000, 1.0)
        for m in messages:
            if m.error() is None:
                key = m.key().decode()
                twice += key in seen
                seen.add(key)
        if messages:
            c.commit(asynchronous=False)
    c.close()
    print(f"read {len(seen)} distinct keys, {twice} duplicates, {len(acked - seen)} acknowledged keys missing")
    check(acked <= seen, f"acknowledged records lost: {sorted(acked - seen)[:5]}")
    check(twice == 0, f"{twice} records were appended twice")
elif mode == "committed":
    group = sys.argv[4]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
    committed = c.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    for tp in committed:
        low, high = c.get_watermark_offsets(tp, timeout=10)
        check(tp.offset == high, f"partition {tp.partition}: committed {tp.offset} after the restart, end {high}")
    c.close()
    print(f"committed offsets held: {[tp.offset for tp in committed]}")
