#!/usr/bin/env python3
"""kafka-python (PyPI, pure Python: its own protocol code) against `fulfillment broker`: topic
creation, idempotent produce with acks=all, a consumer group with manual commits, two members
rebalancing, group listing and offsets, topic deletion.
Usage: kafka_python_suite.py BOOTSTRAP. Exits non-zero with a message on the first failure."""
import sys, threading, time
import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

bootstrap = sys.argv[1]
print(f"kafka-python {kafka.__version__}")


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")


admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic("kp-orders", 3, 1), NewTopic("kp-rebalance", 4, 1)])
try:
    admin.create_topics([NewTopic("kp-orders", 3, 1)])
    check(False, "creating an existing topic succeeded")
except TopicAlreadyExistsError:
    pass

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
futures = [producer.send("kp-orders", key=f"order-{n}".encode(), value=f"v{n}".encode(), headers=[("n", str(n).encode())]) for n in range(3000)]
producer.flush(30)
placed = {}
for n, future in enumerate(futures):
    meta = future.get(timeout=30)
    placed[f"order-{n}"] = (meta.partition, meta.offset)
check(len(set(placed.values())) == 3000, "every record has its own offset")
print("produced 3000 with enable_idempotence and acks=all")

consumer = KafkaConsumer("kp-orders", bootstrap_servers=bootstrap, group_id="kp-g1", auto_offset_reset="earliest", enable_auto_commit=False)
seen = set()
deadline = time.time() + 60
while len(seen) < 3000 and time.time() < deadline:
    batches = consumer.poll(timeout_ms=1000)
    for tp, records in batches.items():
        for r in records:
            key = r.key.decode()
            check(key not in seen, f"{key} delivered twice")
            check(placed[key] == (tp.partition, r.offset), f"{key} at {(tp.partition, r.offset)}, produced at {placed[key]}")
            check(dict(r.headers).get("n") == key.split("-")[1].encode(), f"headers of {key}")
            seen.add(key)
    if batches:
        consumer.commit()
check(len(seen) == 3000, f"group consumed {len(seen)} of 3000")
ends = consumer.end_offsets([TopicPartition("kp-orders", p) for p in range(3)])
for tp, end in ends.items():
    check(consumer.committed(tp) == end, f"{tp}: committed {consumer.committed(tp)}, end {end}")
consumer.close()
offsets = admin.list_group_offsets("kp-g1")["kp-g1"]
check({tp.partition: o.offset for tp, o in offsets.items()} == {tp.partition: e for tp, e in ends.items()}, f"admin sees the commits: {offsets}")
print("group kp-g1 consumed 3000 and committed the end of every partition")

for n in range(1000):
    producer.send("kp-rebalance", key=f"r-{n}".encode(), value=b"x")
producer.flush(30)
received = {"a": set(), "b": set()}
final = {}
stop = threading.Event()


def member(name):
    c = KafkaConsumer("kp-rebalance", bootstrap_servers=bootstrap, group_id="kp-rebalance", auto_offset_reset="earliest",
                      enable_auto_commit=False, client_id=f"member-{name}", heartbeat_interval_ms=500, session_timeout_ms=10000)
    while not stop.is_set():
        batches = c.poll(timeout_ms=500)
        for records in batches.values():
            received[name].update(r.key.decode() for r in records)
        if batches:
            try:
                c.commit()
            except Exception as error:
                print(f"member {name}: commit refused during a rebalance: {error}")
    final[name] = {tp.partition for tp in c.assignment()}
    c.close()


a = threading.Thread(target=member, args=("a",))
a.start()
time.sleep(5)
b = threading.Thread(target=member, args=("b",))
b.start()
for n in range(1000, 2000):
    producer.send("kp-rebalance", key=f"r-{n}".encode(), value=b"x")
    if n % 100 == 0:
        time.sleep(0.05)
producer.flush(30)
deadline = time.time() + 60
while len(received["a"] | received["b"]) < 2000 and time.time() < deadline:
    time.sleep(0.5)
time.sleep(3)
stop.set()
a.join()
b.join()
check(len(received["a"] | received["b"]) == 2000, f"the members saw {len(received['a'] | received['b'])} of 2000")
check(final["a"] and final["b"] and not (final["a"] & final["b"]) and final["a"] | final["b"] == {0, 1, 2, 3}, f"final assignments: {final}")
print(f"rebalanced: a {sorted(final['a'])}, b {sorted(final['b'])}; a saw {len(received['a'])}, b saw {len(received['b'])}")

names = {g["group_id"] for g in admin.list_groups()}
check({"kp-g1", "kp-rebalance"} <= names, f"groups listed: {names}")
admin.delete_topics(["kp-rebalance"])
check("kp-rebalance" not in admin.list_topics(), "kp-rebalance deleted")
producer.close()
print("OK")
