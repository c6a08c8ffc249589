# authinfod — build, test and run. `make demo` and `make test` are the quick start.
SWIFT ?= swift
APT_PACKAGES := libsqlite3-dev libssl-dev pkg-config curl systemd
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build release test demo clean

all: build

## deps: install the system libraries the build links against, when missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## build: debug build of every target.
build: deps
	$(SWIFT) build

## release: optimised build of the authinfod binary.
release: deps
	$(SWIFT) build -c release --product authinfod

## test: every unit and end-to-end test (the end-to-end ones run the real binary).
test: build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## demo: the whole story against the built-in simulator, in a temporary folder.
demo: build
	$(SWIFT) run --skip-build authinfod demo

clean:
	rm -rf .build
