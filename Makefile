# authinfod — build, test and run. `make demo` and `make test` are the quick start.
SWIFT ?= swift
APT_PACKAGES := libsqlite3-dev libssl-dev pkg-config curl systemd
# What the tests run beside the build, as tool:package: strace (durability), setpriv (other
# users on the socket), mandoc (the manual page's lint). promtool (the alert rules' unit tests,
# the metrics' format) comes from Debian's prometheus package: when it is missing, only promtool
# is unpacked into .build-tools, so that no Prometheus server is installed and started.
TEST_TOOLS := strace:strace setpriv:util-linux mandoc:mandoc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

VERSION := $(shell sed -n 's/.*static let version = "\(.*\)"/\1/p' Sources/WeChatPay/BuildInfo.swift)
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR := $(PREFIX)/bin
DOCDIR := $(PREFIX)/share/doc/authinfod
MANDIR := $(PREFIX)/share/man
CONFDIR := /etc/authinfod
ifeq ($(PREFIX),/usr)
UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
else
UNITDIR ?= /etc/systemd/system
SYSUSERSDIR ?= /etc/sysusers.d
endif

.PHONY: all deps test-deps build systemd-check release static test demo bench fuzz soak install uninstall deb clean

all: build

## deps: install the system libraries the build links against, when missing.
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

## test-deps: the tools the tests run, when missing.
test-deps:
	@missing=""; for t in $(TEST_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@if ! command -v promtool >/dev/null && [ ! -x .build-tools/promtool ]; then \
		echo "unpacking promtool from Debian's prometheus package into .build-tools"; \
		rm -rf .build-tools && mkdir -p .build-tools && cd .build-tools && \
		{ apt-get download prometheus >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && apt-get download prometheus; }; } && \
		dpkg-deb --fsys-tarfile prometheus_*.deb | tar -xO ./usr/bin/promtool > promtool && chmod 0755 promtool && rm -f prometheus_*.deb; \
	fi

## build: debug build of every target.
build: deps
	$(SWIFT) build

## release: optimised build of the authinfod binary.
release: deps
	$(SWIFT) build -c release --product authinfod

## static: release binary with the Swift runtime linked in, for hosts without a Swift toolchain (what
## install and deb ship): optimised for size (-Osize measured no slower on the serving path, whose CPU
## is in the kernel and OpenSSL), linked by the toolchain's lld folding identical code. Built in its
## own folder so the flags do not rebuild the other builds. -z now: every symbol bound at start,
## so the relocation table is read-only for the whole run (full RELRO). -z pack-relative-relocs:
## the 37,000 relative relocations of a position-independent binary in 7 KB (DT_RELR) instead of
## 900 KB read at every start and kept resident. It needs glibc 2.36 (Debian 12, Ubuntu 22.10) where
## the binary runs: on an older build host it is left out, and the package depends on 2.36.
RELR_FLAGS := $(shell printf '2.36\n%s\n' "$$(getconf GNU_LIBC_VERSION 2>/dev/null | cut -d' ' -f2)" | sort -V -C && echo -Xlinker -z -Xlinker pack-relative-relocs)
STATIC_FLAGS := --static-swift-stdlib -Xswiftc -Osize -Xswiftc -use-ld=lld -Xlinker --icf=all -Xlinker -z -Xlinker now $(RELR_FLAGS)
static: deps
	$(SWIFT) build -c release $(STATIC_FLAGS) --product authinfod --scratch-path .build-static

## install: binary, unit, sysusers file, manual page, docs (with the alert rules and the dashboard),
## and the example config (never over an existing one).
install: static
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/prometheus $(DESTDIR)$(DOCDIR)/grafana
	install -m 0755 -s .build-static/release/authinfod $(DESTDIR)$(BINDIR)/authinfod
	strip --remove-section=.comment $(DESTDIR)$(BINDIR)/authinfod
	sed -e 's|/usr/local/bin/authinfod|$(BINDIR)/authinfod|' -e 's|/usr/local/share/doc/authinfod|$(DOCDIR)|' \
		systemd/authinfod.service > $(DESTDIR)$(UNITDIR)/authinfod.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/authinfod.service
	install -m 0644 systemd/authinfod.sysusers $(DESTDIR)$(SYSUSERSDIR)/authinfod.conf
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 config/authinfod.json $(DESTDIR)$(DOCDIR)/authinfod.json.example
	gzip -9n < systemd/authinfod.8 > $(DESTDIR)$(MANDIR)/man8/authinfod.8.gz
	chmod 0644 $(DESTDIR)$(MANDIR)/man8/authinfod.8.gz
	install -m 0644 config/prometheus/authinfod-rules.yml config/prometheus/authinfod-rules.test.yml $(DESTDIR)$(DOCDIR)/prometheus/
	install -m 0644 config/grafana/authinfod.json $(DESTDIR)$(DOCDIR)/grafana/
	install -d -m 0750 $(DESTDIR)$(CONFDIR)
	@if [ -e $(DESTDIR)$(CONFDIR)/authinfod.json ]; then echo "kept the existing $(CONFDIR)/authinfod.json"; \
	else install -m 0640 config/authinfod.json $(DESTDIR)$(CONFDIR)/authinfod.json; fi
	@echo "installed. Next: systemd-sysusers, edit $(CONFDIR)/authinfod.json, put apiclient_key.pem there (chmod 600), authinfod check-config, systemctl enable --now authinfod"

## uninstall: removes what install put down; keeps $(CONFDIR) (config and keys) and /var/lib/authinfod (the cache).
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/authinfod $(DESTDIR)$(UNITDIR)/authinfod.service $(DESTDIR)$(SYSUSERSDIR)/authinfod.conf \
		$(DESTDIR)$(MANDIR)/man8/authinfod.8.gz
	rm -rf $(DESTDIR)$(DOCDIR)
	@echo "kept $(CONFDIR) (configuration and keys) and /var/lib/authinfod (the cache)"

## deb: build/authinfod_VERSION_amd64.deb with dpkg-deb.
deb: static
	rm -rf build/deb
	$(MAKE) --no-print-directory install PREFIX=/usr DESTDIR=$(CURDIR)/build/deb
	install -m 0644 systemd/debian/copyright build/deb/usr/share/doc/authinfod/copyright
	printf 'authinfod ($(VERSION)) unstable; urgency=medium\n\n  * Release $(VERSION).\n\n -- authinfod maintainers <maintainers@users.noreply.b-seed-25868820.example>  %s\n' \
		"$$(date -R)" | gzip -9n > build/deb/usr/share/doc/authinfod/changelog.gz
	install -d -m 0755 build/deb/usr/share/lintian/overrides build/deb/DEBIAN
	install -m 0644 systemd/debian/lintian-overrides build/deb/usr/share/lintian/overrides/authinfod
	sed -e 's/@VERSION@/$(VERSION)/' -e "s/@SIZE@/$$(du -sk build/deb --exclude=DEBIAN | cut -f1)/" systemd/debian/control.in > build/deb/DEBIAN/control
	echo /etc/authinfod/authinfod.json > build/deb/DEBIAN/conffiles
	install -m 0755 systemd/debian/postinst systemd/debian/prerm systemd/debian/postrm build/deb/DEBIAN/
	cd build/deb && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum > DEBIAN/md5sums
	dpkg-deb --root-owner-group --build build/deb build/authinfod_$(VERSION)_amd64.deb

## systemd-check: lintian on the .deb, then the .deb on a minimal Debian 12 booted under systemd-nspawn (root; the Debian
## rootfs is made with debootstrap once and cached in .build-systemd). About 3 minutes; see
## systemd/systemd-check for what it checks.
systemd-check: deb
	@command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null && command -v lintian >/dev/null || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap systemd-container lintian; }
	$(SWIFT) build --product authinfod-bench
	$(SUDO) systemd/systemd-check build/authinfod_$(VERSION)_amd64.deb .build/debug/authinfod-bench

## test: every unit and end-to-end test (the end-to-end ones run the real binary). One at a time:
## the end-to-end tests block while they watch the daemon, and run side by side on 2 cores they
## starved the async tests of the runner's thread pool for a minute (timing assertions then failed).
test: test-deps build
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --no-parallel

## demo: the whole story against the built-in simulator, in a temporary folder.
demo: build
	$(SWIFT) run --skip-build authinfod demo

## bench: every figure of the README's Performance table beside its reference and target, in one run
## (not part of make test; about 5 minutes). Installs wrk, nginx and the wechatpayv3 reference client;
## runs openssl speed and builds the stripped static binary for their rows, and the C floors under CPU per
## refresh (refresh-floor.c) and under the large restart (publish-floor.c), with the system C compiler.
BENCH_DEVICES ?= 10000
BENCH_LARGE ?= 100000
bench: static
	@command -v wrk >/dev/null && [ -x /usr/sbin/nginx ] || { $(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk nginx-light; }
	@python3 -c 'import wechatpayv3' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check wechatpayv3
	$(SWIFT) build -c release --product authinfod
	$(SWIFT) build -c release --product authinfod-bench
	strip -o .build-static/authinfod.stripped .build-static/release/authinfod
	$(CC) -O2 -Wall -o .build/refresh-floor Sources/authinfod-bench/refresh-floor.c -lcrypto -lsqlite3
	$(CC) -O2 -Wall -pthread -o .build/publish-floor Sources/authinfod-bench/publish-floor.c
	@echo "openssl speed rsa2048 (the limit the sign path is held to) …"
	@speed="$$(openssl speed -seconds 5 rsa2048 2>/dev/null | grep '^rsa 2048')"; echo "$$speed"; \
	AUTHINFOD_BINARY=$(CURDIR)/.build-static/release/authinfod .build/release/authinfod-bench report --devices $(BENCH_DEVICES) --large $(BENCH_LARGE) \
		--python-client Sources/authinfod-bench/wechatpayv3-client.py --floor-client .build/refresh-floor --publish-floor .build/publish-floor --openssl-speed "$$speed" \
		--static-binary .build-static/authinfod.stripped

## soak: the release daemon, SOAK_DEVICES devices with a SOAK_LIFETIME s lifetime, SOAK_MINUTES of random
## gateway faults and reloads (not part of make test; about 11 minutes by default).
SOAK_DEVICES ?= 1000
SOAK_LIFETIME ?= 20
SOAK_MINUTES ?= 10
soak: deps
	$(SWIFT) build -c release --product authinfod
	$(SWIFT) build -c release --product authinfod-bench
	.build/release/authinfod-bench soak --devices $(SOAK_DEVICES) --lifetime $(SOAK_LIFETIME) --minutes $(SOAK_MINUTES)

## fuzz: libFuzzer (with AddressSanitizer) on the HTTP parser, the config loader and the gateway-answer
## parser, FUZZ_SECONDS each (default 120), from the seeds in Tests/FuzzCorpus. New inputs collect in
## .build-fuzz/corpus; a crash stops the run and leaves its input in .build-fuzz/artifacts.
FUZZ_SECONDS ?= 120
FUZZ_TARGETS := http config answer reader
fuzz: deps
	@mkdir -p .build-fuzz/artifacts
	@echo '{"schemaVersion":"1.0","linker":{"path":"$(dir $(shell readlink -f $$(command -v $(SWIFT))))ld.lld"}}' > .build-fuzz/toolset.json
	$(SWIFT) build --toolset .build-fuzz/toolset.json --scratch-path .build-fuzz -c release --product authinfod-fuzz \
		-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p .build-fuzz/corpus/$$t; \
		echo "== fuzzing $$t for $(FUZZ_SECONDS) s"; \
		SWIFT_BACKTRACE=enable=no AUTHINFOD_FUZZ_TARGET=$$t .build-fuzz/release/authinfod-fuzz .build-fuzz/corpus/$$t Tests/FuzzCorpus/$$t \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 -artifact_prefix=.build-fuzz/artifacts/$$t- \
			2> .build-fuzz/$$t.log || { tail -40 .build-fuzz/$$t.log; echo "fuzz: $$t found a crash: .build-fuzz/artifacts/"; exit 1; }; \
		grep -E '^#[0-9]+.*DONE|number_of_executed_units|peak_rss' .build-fuzz/$$t.log; \
	done

clean:
	rm -rf .build build .build-fuzz .build-static .build-tools
	$(SUDO) rm -rf .build-systemd
