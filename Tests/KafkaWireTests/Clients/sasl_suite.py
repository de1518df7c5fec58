#!/usr/bin/env python3
"""confluent-kafka over SASL_SSL against `fulfillment broker --users FILE --tls-cert ...`.

Arguments: BOOTSTRAP CA_FILE PASSWORD_OF_storefront PASSWORD_OF_ops. The users file grants
storefront produce on orders and orders.priority only, ops read on every topic and admin.
Checks, with the error codes clients expect: SCRAM-SHA-256 and -512 and PLAIN log in;
a wrong password fails with SASL authentication failed; storefront producing to a topic it
is not granted gets TOPIC_AUTHORIZATION_FAILED; storefront cannot read nor commit offsets of
a topic it may not read; ops reads what storefront wrote and commits; storefront cannot create topics, ops can. Prints OK at the end."""
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap, ca, storefront_password, ops_password = sys.argv[1:5]


def config(user, password, mechanism):
    return {
        "bootstrap.servers": bootstrap, "security.protocol": "SASL_SSL", "ssl.ca.location": ca,
        "sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password,
    }


def produce(user, password, mechanism, topic, count):
    """Delivery errors by code name, and the offsets delivered."""
    errors, offsets = [], []

    def report(error, message):
        if error is not None:
            errors.append(error.name())
        else:
            offsets.append(message.offset())

    producer = Producer(dict(config(user, password, mechanism), **{"message.timeout.ms": 10000, "error_cb": lambda e: errors.append(e.name())}))
    for i in range(count):
        producer.produce(topic, key=b"k%d" % i, value=b"order %d" % i, on_delivery=report)
    producer.flush(20)
    return errors, offsets


def expect(condition, message):
    if not condition:
        print("FAILED: " + message)
        sys.exit(1)


for mechanism in ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"):
    errors, offsets = produce("storefront", storefront_password, mechanism, "orders", 5)
    expect(errors == [] and len(offsets) == 5, "%s: storefront produces to orders: errors %s, offsets %s" % (mechanism, errors, offsets))

errors, offsets = produce("storefront", "not-" + storefront_password, "SCRAM-SHA-512", "orders", 1)
expect(offsets == [] and "_AUTHENTICATION" in errors, "a wrong password fails authentication: %s" % errors)

errors, offsets = produce("storefront", storefront_password, "SCRAM-SHA-512", "payment.requested", 1)
expect(offsets == [] and "TOPIC_AUTHORIZATION_FAILED" in errors, "storefront may not produce to payment.requested: %s" % errors)


def read(user, password, topic, wanted, seconds=15):
    consumer = Consumer(dict(config(user, password, "SCRAM-SHA-256"), **{"group.id": "g-" + uuid.uuid4().hex[:8], "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, 0, 0)])
    values, errors = [], []
    deadline = time.time() + seconds
    while len(values) < wanted and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            errors.append(message.error().name())
            if message.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                break
            continue
        values.append(message.value())
    consumer.close()
    return values, errors


values, errors = read("storefront", storefront_password, "orders", 1, seconds=8)
expect(values == [] and "TOPIC_AUTHORIZATION_FAILED" in errors, "storefront may not read orders: %s %s" % (values, errors))
values, errors = read("ops", ops_password, "orders", 15)
expect(len(values) == 15, "ops reads the 15 orders storefront wrote: %d %s" % (len(values), errors))


def commit(user, password, topic):
    """The error of committing offset 1 of topic's partition 0, or None."""
    consumer = Consumer(dict(config(user, password, "SCRAM-SHA-512"), **{"group.id": "commits-" + user, "enable.auto.commit": False}))
    try:
        result = consumer.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
        errors = [p.error.name() for p in result if p.error is not None]
        return errors[0] if errors else None
    except KafkaException as failure:
        return failure.args[0].name()
    finally:
        consumer.close()


expect(commit("ops", ops_password, "orders") is None, "ops commits its offsets on orders")
expect(commit("storefront", storefront_password, "orders") == "TOPIC_AUTHORIZATION_FAILED", "storefront may not commit offsets of orders it may not read")


def create(user, password, name):
    admin = AdminClient(config(user, password, "SCRAM-SHA-512"))
    future = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name]
    try:
        future.result(15)
        return None
    except KafkaException as failure:
        return failure.args[0].name()


expect(create("storefront", storefront_password, "made-by-storefront") == "TOPIC_AUTHORIZATION_FAILED", "storefront may not create topics")
expect(create("ops", ops_password, "made-by-ops") is None, "ops creates topics")
print("OK")
