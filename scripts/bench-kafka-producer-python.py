#!/usr/bin/env python3
"""The Python reference for `fulfillment bench kafka-producer`: confluent-kafka (PyPI) producing
the same records (1,000,000 x ~100 B, keys `order-N`, idempotent, acks=all) to a 3-broker
librdkafka mock cluster in its own process, waiting for every delivery report.
Prints one JSON object, like the Swift benchmark's --json."""
import json, sys, time
from confluent_kafka import Producer

records = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
payload = b"x" * 88
p = Producer({"test.mock.num.brokers": 3, "enable.idempotence": True, "acks": "all",
              "partitioner": "murmur2_random", "linger.ms": 2, "batch.num.messages": 10000,
              "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576})
failed = 0
def report(err, msg):
    global failed
    if err is not None:
        failed += 1
p.produce("bench", key=b"warm-up", value=payload, on_delivery=report)
p.flush()
start = time.perf_counter()
for n in range(records):
    while True:
        try:
            p.produce("bench", key=b"order-%d" % n, value=payload, on_delivery=report)
            break
        except BufferError:
            p.poll(0.001)
    if n % 10000 == 0:
        p.poll(0)
p.flush()
seconds = time.perf_counter() - start
print(json.dumps({"client": "confluent-kafka", "records": records, "failed": failed,
                  "seconds": seconds, "records_per_s": records / seconds}))
