# Two entry points do all set-up on a fresh Debian machine with Swift installed:
#   make demo   the main job on the embedded default
#   make test   every test (what .ci/run calls)
SWIFT ?= swift
DATA_DIR ?= ./fulfillment-data

.PHONY: deps build release demo test bench-broker bench-saga bench-kafka-producer clean

# System packages the build and tests need; installed with apt-get only when missing.
# librdkafka: the Kafka client; libpq + postgresql: PostgreSQL stores and their test server.
# kcat: a Kafka client nobody here wrote, for the wire-protocol tests.
APT_PACKAGES := libsqlite3-dev pkg-config librdkafka-dev libpq-dev postgresql kcat
deps:
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 is required: https://swift.org/install"; exit 2; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The whole saga on the embedded default: 20,000 synthetic orders with the default fault
# profile (retries, dead letters, compensations), then the summary and the conservation check.
demo: release
	./.build/release/fulfillment run --orders 20000 --faults default --data-dir $(DATA_DIR)

bench-saga: release
	./scripts/bench-saga.sh

bench-broker: release
	./.build/release/fulfillment bench broker --json

# The librdkafka client's producer against a 3-broker mock cluster, then the same load from
# Python's confluent-kafka (installed with pip when missing) for the ratio.
bench-kafka-producer: release
	./.build/release/fulfillment bench kafka-producer --json
	@python3 -c "import confluent_kafka" 2>/dev/null || pip install -q confluent-kafka
	./scripts/bench-kafka-producer-python.py

# Builds the executable too: the crash tests run it as a child process and SIGKILL it.
# The store tests run against SQLite files and a PostgreSQL server started here on loopback
# (scripts/test-postgres.sh), stopped again when the tests end, pass or fail. Suites run one
# at a time: several of them measure delays and timeouts, start brokers, servers and child
# processes, and on 2 cores running them together only makes them wait for each other.
test: deps
	$(SWIFT) build --build-tests
	@url=$$(./scripts/test-postgres.sh start) && trap './scripts/test-postgres.sh stop' EXIT && \
		echo "PostgreSQL for the store tests: $$url" && \
		FULFILLMENT_TEST_POSTGRES=$$url timeout 45m $(SWIFT) test --skip-build --no-parallel

clean:
	rm -rf .build $(DATA_DIR)
