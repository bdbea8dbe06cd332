# herald — the two commands of the README:
#   make run    install what is missing, build, serve on 127.0.0.1:8080 with data in ./data
#   make test   install what is missing, compile Release and MinSizeRel (warnings only),
#               build (normal, ASan+UBSan, TSan), run every test
#               (TSan: the unit tests and the threaded e2e paths), a valgrind smoke run,
#               then fuzz each parser briefly
#   make install   copy build/herald, the systemd unit, the default config and the docs
#                  under $(DESTDIR)$(PREFIX) (PREFIX /usr/local; the config under
#                  $(DESTDIR)$(SYSCONFDIR), /etc); build first (make build)
#   make deb       build/herald_VERSION_ARCH.deb with dpkg-deb (offline)
# Other targets: build, build-types, asan, tsan, fuzz, bench, docs, clean, uninstall.

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 20
LISTEN ?= 127.0.0.1:8080
DATA_DIR ?= ./data
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
BIN ?= build/herald

.PHONY: run test deps build build-types asan tsan fuzz fuzz-build test-build test-asan test-tsan test-valgrind \
	bench docs clean install uninstall deb

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DHD_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j $(JOBS)

tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DHD_TSAN=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS)

# Compile-only builds at the other optimisation levels: each level inlines
# differently, so -O3 and -Os each find -Wmaybe-uninitialized and
# -Wformat-truncation cases the others miss (about 45 s of CPU on 2 cores).
build-types: deps
	@cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-rel -j $(JOBS) >/dev/null
	@cmake -S . -B build-os -DCMAKE_BUILD_TYPE=MinSizeRel >/dev/null
	@cmake --build build-os -j $(JOBS) >/dev/null
	@echo "== Release and MinSizeRel build without warnings =="

fuzz-build: deps
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DHD_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

run: build
	./build/herald serve --listen $(LISTEN) --data-dir $(DATA_DIR)

test-build: build
	@echo "== tests: release build =="
	@cd build && ctest --output-on-failure --timeout 1800

test-asan: asan
	@echo "== tests: ASan+UBSan build =="
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --timeout 1800

# The threads (store writer, checkpointer, readers on the libuv pool)
# under ThreadSanitizer: every unit test, and end-to-end tests that publish,
# read, crash, fan out, consume through groups, cursors and webhooks against a
# TSan-built server (not the RSS test:
# TSan's shadow memory makes RSS meaningless).
TSAN_E2E = test_smoke.py test_http.py test_publish.py test_read.py test_crash.py test_longpoll.py test_ws.py \
	test_groups.py test_cursors.py test_webhooks.py
test-tsan: tsan
	@echo "== tests: ThreadSanitizer build =="
	@cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --output-on-failure \
		--timeout 1800 -L unit
	@cd tests/e2e && TSAN_OPTIONS=halt_on_error=1 HERALD_BIN=$(CURDIR)/build-tsan/herald \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider -k 'not keep_memory_flat' $(TSAN_E2E)

# A smoke scenario under valgrind's memcheck: no error, no leak.
test-valgrind: build
	@echo "== valgrind smoke =="
	@./scripts/valgrind-smoke.sh build/herald

# Each fuzzer runs FUZZ_SECONDS on a scratch copy of its corpus (the seeds in
# the repository stay as they are), then fails the run on any crash.
fuzz: fuzz-build
	@for f in build-fuzz/fuzz_*; do \
		name=$${f#build-fuzz/fuzz_}; \
		work=build-fuzz/corpus-$$name; mkdir -p $$work; \
		echo "== fuzz $$name for $(FUZZ_SECONDS)s =="; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 -artifact_prefix=build-fuzz/ \
			$$work tests/fuzz/corpus/$$name 2>build-fuzz/fuzz-$$name.log \
			|| { tail -50 build-fuzz/fuzz-$$name.log; exit 1; }; \
		tail -1 build-fuzz/fuzz-$$name.log; \
	done

test: build-types test-build test-asan test-tsan test-valgrind fuzz
	@echo "== all tests passed =="

bench: build
	./bench/publish.sh
	./bench/fanout.sh
	./bench/groups.sh
	./bench/webhooks.sh
	./bench/storm.sh

docs: build
	./build/herald config-doc > docs/config.md

# The config file is installed only when none is there (an operator's edits
# stay); the unit gets the real paths of this PREFIX and SYSCONFDIR.
install:
	@[ -x $(BIN) ] || { echo "install: $(BIN) is missing (make build)"; exit 1; }
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/herald
	install -d $(DESTDIR)$(UNITDIR)
	sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(PREFIX)/share/doc/herald|g' \
		packaging/herald.service.in > $(DESTDIR)$(UNITDIR)/herald.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/herald.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/herald/herald.conf ] || \
		install -D -m 0644 packaging/herald.conf $(DESTDIR)$(SYSCONFDIR)/herald/herald.conf
	install -d $(DESTDIR)$(PREFIX)/share/doc/herald/deploy
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/herald/
	install -m 0644 docs/deploy/nginx.conf $(DESTDIR)$(PREFIX)/share/doc/herald/deploy/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/herald $(DESTDIR)$(UNITDIR)/herald.service
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/herald
	@echo "uninstall: $(DESTDIR)$(SYSCONFDIR)/herald and /var/lib/herald are left as they are"

deb: build
	@./scripts/make-deb.sh $(BIN) build

clean:
	rm -rf build build-asan build-tsan build-fuzz build-rel build-os
