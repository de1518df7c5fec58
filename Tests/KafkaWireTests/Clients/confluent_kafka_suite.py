#!/usr/bin/env python3
"""confluent-kafka (PyPI, its own bundled librdkafka) against `fulfillment broker`: topic creation,
idempotent produce with acks=all, a consumer group with manual commits, two members
rebalancing while records keep coming, group listing, topic deletion.
Usage: confluent_kafka_suite.py BOOTSTRAP. Exits non-zero with a message on the first failure."""
import sys, threading, time
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, version, libversion
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
print(f"confluent-kafka {version()}, librdkafka {libversion()}")


def check(condition, message):
    if not condition:
        sys.exit(f"FAILED: {message}")


admin = AdminClient({"bootstrap.servers": bootstrap})

# Topic creation, and the error for a topic that exists.
for future in admin.create_topics([NewTopic("cc-orders", 4, 1), NewTopic("cc-rebalance", 4, 1), NewTopic("cc-acks", 2, 1)]).values():
    future.result(20)
try:
    admin.create_topics([NewTopic("cc-orders", 4, 1)])["cc-orders"].result(20)
    check(False, "creating an existing topic succeeded")
except Exception as error:
    check(error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, f"wrong error for an existing topic: {error}")
metadata = admin.list_topics(timeout=10)
check(len(metadata.topics["cc-orders"].partitions) == 4, "cc-orders has 4 partitions")

# Idempotent producer, acks=all, keys and headers.
failures = []
delivered = {}


def report(error, message):
    if error is not None:
        failures.append(str(error))
    else:
        delivered[message.key().decode()] = (message.partition(), message.offset())


producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 2})
for n in range(5000):
    producer.produce("cc-orders", key=f"order-{n}", value=f'{{"n": {n}}}', headers=[("source", b"confluent"), ("n", str(n).encode())], on_delivery=report)
    if n % 500 == 0:
        producer.poll(0)
check(producer.flush(30) == 0, "every record delivered")
check(not failures, f"delivery failures: {failures[:3]}")
check(len(delivered) == 5000, f"{len(delivered)} of 5000 delivered")
check(len(set(delivered.values())) == 5000, "every record has its own offset")
print("produced 5000 with enable.idempotence and acks=all")

# acks=0 (no response at all) and acks=1 land too.
for acks in ("0", "1"):
    plain = Producer({"bootstrap.servers": bootstrap, "acks": acks, "enable.idempotence": False, "linger.ms": 2})
    for n in range(100):
        plain.produce("cc-acks", key=f"acks{acks}-{n}", value=b"x")
    check(plain.flush(30) == 0, f"acks={acks}: every record sent")
reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "cc-acks-reader", "auto.offset.reset": "earliest"})
reader.subscribe(["cc-acks"])
keys = set()
deadline = time.time() + 30
while len(keys) < 200 and time.time() < deadline:
    keys.update(m.key().decode() for m in reader.consume(500, 1.0) if m.error() is None)
reader.close()
check(len(keys) == 200, f"acks=0 and acks=1 records read back: {len(keys)} of 200")
print("acks=0 and acks=1 produce land")

# A group consumer with manual commits sees every record once, with its headers.
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "cc-g1", "auto.offset.reset": "earliest", "enable.auto.commit": False})
consumer.subscribe(["cc-orders"])
seen = {}
deadline = time.time() + 60
while len(seen) < 5000 and time.time() < deadline:
    messages = consumer.consume(500, 1.0)
    for m in messages:
        check(m.error() is None, f"consume error {m.error()}")
        key = m.key().decode()
        check(key not in seen, f"{key} delivered twice")
        headers = dict(m.headers())
        check(headers.get("source") == b"confluent" and headers.get("n") == key.split("-")[1].encode(), f"headers of {key}: {headers}")
        check(delivered[key] == (m.partition(), m.offset()), f"{key} at {(m.partition(), m.offset())}, produced at {delivered[key]}")
        seen[key] = m.offset()
    if messages:
        consumer.commit(asynchronous=False)
check(len(seen) == 5000, f"group consumed {len(seen)} of 5000")
committed = consumer.committed([TopicPartition("cc-orders", p) for p in range(4)], timeout=10)
for tp in committed:
    low, high = consumer.get_watermark_offsets(tp, timeout=10)
    check(tp.offset == high, f"partition {tp.partition}: committed {tp.offset}, end {high}")
consumer.close()
print("group cc-g1 consumed 5000 and committed the end of every partition")

# The group's offsets hold: a new member of the same group gets nothing old.
again = Consumer({"bootstrap.servers": bootstrap, "group.id": "cc-g1", "auto.offset.reset": "earliest", "enable.auto.commit": False})
again.subscribe(["cc-orders"])
stale = again.consume(100, 8.0)
check(not [m for m in stale if m.error() is None], f"{len(stale)} records redelivered after the commit")
again.close()

# Two members rebalancing while records keep coming: the partitions split, nothing is lost.
for n in range(2000):
    producer.produce("cc-rebalance", key=f"r-{n}", value=b"x")
producer.flush(30)
received = {"a": set(), "b": set()}
assignments = {"a": [], "b": []}
stop = threading.Event()


def member(name):
    def on_assign(consumer, partitions):
        assignments[name].append(sorted(p.partition for p in partitions))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cc-rebalance", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "client.id": f"member-{name}", "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
    c.subscribe(["cc-rebalance"], on_assign=on_assign)
    while not stop.is_set():
        messages = c.consume(200, 0.5)
        for m in messages:
            if m.error() is None:
                received[name].add(m.key().decode())
        if messages:
            try:
                c.commit(asynchronous=False)
            except Exception as error:  # a commit racing a rebalance is refused; the records come again
                print(f"member {name}: commit refused during a rebalance: {error}")
    c.close()


a = threading.Thread(target=member, args=("a",))
a.start()
time.sleep(5)
b = threading.Thread(target=member, args=("b",))
b.start()
for n in range(2000, 4000):
    producer.produce("cc-rebalance", key=f"r-{n}", value=b"x")
    if n % 100 == 0:
        producer.poll(0)
        time.sleep(0.02)
producer.flush(30)
deadline = time.time() + 60
while len(received["a"] | received["b"]) < 4000 and time.time() < deadline:
    time.sleep(0.5)
time.sleep(2)
stop.set()
a.join()
b.join()
union = received["a"] | received["b"]
check(len(union) == 4000, f"the two members saw {len(union)} of 4000 records")
check(assignments["b"] and assignments["b"][-1], f"member b never got partitions: {assignments}")
final_a, final_b = set(assignments["a"][-1]), set(assignments["b"][-1])
check(final_a and not (final_a & final_b) and final_a | final_b == {0, 1, 2, 3}, f"final assignments overlap or leave gaps: {assignments}")
print(f"rebalanced: a {assignments['a']}, b {assignments['b']}; a saw {len(received['a'])}, b saw {len(received['b'])}")

# Groups are listed; topics are deleted.
listed = admin.list_consumer_groups().result(20)
names = {g.group_id for g in listed.valid}
check({"cc-g1", "cc-rebalance"} <= names, f"groups listed: {names}")
described = admin.describe_consumer_groups(["cc-g1"])["cc-g1"].result(20)
check(described.group_id == "cc-g1" and str(described.state).endswith("EMPTY") and not described.members, f"cc-g1 described: {described}")
admin.delete_topics(["cc-rebalance"])["cc-rebalance"].result(20)
check("cc-rebalance" not in admin.list_topics(timeout=10).topics, "cc-rebalance deleted")
print("OK")
