# Two entry points do all set-up on a fresh Debian machine with Swift installed:
#   make demo   the main job on the embedded default
#   make test   every test (what .ci/run calls)
SWIFT ?= swift
DATA_DIR ?= ./fulfillment-data

.PHONY: deps build release demo test bench-broker bench-saga clean

# System packages the build and tests need; installed with apt-get only when missing.
APT_PACKAGES := libsqlite3-dev pkg-config
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

# Builds the executable too: the crash tests run it as a child process and SIGKILL it.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

clean:
	rm -rf .build $(DATA_DIR)
