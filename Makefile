# loganalytics: the two commands a new machine needs are `make demo` and `make test`.
LUA ?= lua5.4
BUILD ?= build
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian 12 packages for building, testing and the demo (the module itself
# needs only libcurl, cJSON, OpenSSL, zlib or ISA-L, and Lua's headers:
# README, "Install"; yajl and zlib build the differential checks)
DEB_PACKAGES = build-essential cmake pkg-config curl python3 git \
  lua5.4 liblua5.4-dev lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
  luajit2 libluajit2-5.1-dev luarocks lua-busted lua-cjson nginx libnginx-mod-http-lua \
  libcurl4-openssl-dev libcjson-dev libyajl-dev libssl-dev libisal-dev zlib1g-dev openssl valgrind strace \
  clang libclang-rt-14-dev llvm lua-ldoc tmux locales-all

.PHONY: all setup build build-jit demo test test-no-isal test-fresh-clone check-no-shared \
  check-readme test-valgrind check-valgrind check-asan check-alloc build-tsan check-tsan rock clean fuzz \
  fuzz-build fuzz-smoke bench docs

all: build

setup:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

build:
	cmake -S . -B $(BUILD) -DLUA_VERSION=$(subst lua,,$(LUA)) >/dev/null
	cmake --build $(BUILD) -j2 -- --no-print-directory -s

# The module for LuaJIT (nginx's Lua module): build/lua-jit/loganalytics/core.so
build-jit:
	cmake -S . -B $(BUILD)/lua-jit -DLUA_VERSION=jit >/dev/null
	cmake --build $(BUILD)/lua-jit --target loganalytics_core -j2 -- --no-print-directory -s

# Starts the local server, runs examples/demo.lua against it, stops the server.
demo: setup build
	LUA=$(LUA) sh examples/run_demo.sh

test: build
	busted --lua=$(LUA)

# The whole suite with gzip inflated by zlib, as on a machine without ISA-L:
# built into $(NO_ISAL_BUILD) with ISA-L's headers, pkg-config file and
# libraries hidden (.ci/without-isal: a mount namespace, as root), so CMake
# must find zlib by itself; where no mount namespace can be made, with
# -DWITH_ISAL=OFF instead. The specs' subprocesses
# and tools use that build (LA_BUILD_DIR), the rocks they build skip ISA-L
# too (LOGANALYTICS_WITH_ISAL), and spec/gunzip_spec.lua checks the module
# really has the zlib inflater (LA_EXPECT_INFLATER).
NO_ISAL_BUILD ?= $(BUILD)/no-isal
test-no-isal: build
	@if unshare -m --propagation private true 2>/dev/null; then \
	  echo "test-no-isal: building with ISA-L hidden (.ci/without-isal)"; \
	  rm -rf $(NO_ISAL_BUILD); \
	  .ci/without-isal sh -c 'cmake -S . -B $(NO_ISAL_BUILD) -DLUA_VERSION=$(subst lua,,$(LUA)) >/dev/null && \
	    cmake --build $(NO_ISAL_BUILD) -j2 -- --no-print-directory -s'; \
	else \
	  echo "test-no-isal: no mount namespace here: building with -DWITH_ISAL=OFF"; \
	  cmake -S . -B $(NO_ISAL_BUILD) -DLUA_VERSION=$(subst lua,,$(LUA)) -DWITH_ISAL=OFF >/dev/null && \
	  cmake --build $(NO_ISAL_BUILD) -j2 -- --no-print-directory -s; \
	fi
	LA_REPEAT_RUN=1 LA_BUILD_DIR=$(NO_ISAL_BUILD) LOGANALYTICS_WITH_ISAL=OFF LA_EXPECT_INFLATER=zlib \
	  busted --lua=$(LUA) --cpath='$(NO_ISAL_BUILD)/?.so' $(REPEAT_RUN)

# Nothing in the repository reads the folder beside the checkout (or any path outside it): the
# recorded responses and REST examples are in spec/fixtures/. Only the
# provenance notes may name where they came from.
check-no-shared:
	@found=$$(git grep --untracked -n -I -e 'shared[/]' -- . ':!*PROVENANCE.md' || true); \
	if [ -n "$$found" ]; then echo "$$found"; echo "check-no-shared: files read outside the repository" >&2; exit 1; fi; \
	echo "check-no-shared: nothing reads outside the repository"

# A fresh clone of HEAD in an empty temporary directory, with nothing beside
# it: `make demo` and `make test` there (what a new user runs).
test-fresh-clone:
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	git clone -q "$(CURDIR)" "$$dir/loganalytics" && cd "$$dir/loganalytics" && \
	echo "fresh clone of $$(git rev-parse --short HEAD) in $$dir/loganalytics" && \
	$(MAKE) --no-print-directory demo LUA=$(LUA) && $(MAKE) --no-print-directory test LUA=$(LUA)

# Specs whose work runs in processes of their own (lua5.4 scripts, luarocks,
# nginx, the allocation and TSan hosts, ldoc), not in busted's: they give the
# same answer whatever runtime or tool runs busted, so the repeat runs below
# (no ISA-L, other runtimes, valgrind, ASan) leave them out. make test runs them.
OWN_PROCESS_SPECS = alloc races runtimes rock cli examples docs package url_guard nginx resty server_limits
# (LA_REPEAT_RUN=1 in their environment: specs skip what only the first run needs)
REPEAT_RUN = $(foreach s,$(OWN_PROCESS_SPECS),--exclude-pattern=$(s)_spec)

# Every command block of README.md run as written (.ci/readme_blocks.py), in
# order, in a fresh clone of HEAD in an empty temporary directory: the two
# commands (make demo, make test: the whole suite), the rock into a tree,
# the first query, the examples, nginx, the command. README_TIMEOUT bounds it
# (a server that never starts must not hang CI). The directory is readable by
# all: nginx started by root runs its workers as nobody.
README_TIMEOUT ?= 2400
check-readme:
	@dir=$$(mktemp -d) && chmod 755 "$$dir" && trap 'rm -rf "$$dir"' EXIT && \
	git clone -q "$(CURDIR)" "$$dir/loganalytics" && \
	echo "fresh clone of $$(git -C "$$dir/loganalytics" rev-parse --short HEAD) in $$dir/loganalytics" && \
	timeout --kill-after=10 $(README_TIMEOUT) \
	  python3 "$$dir/loganalytics/.ci/readme_blocks.py" "$$dir/loganalytics/README.md" "$$dir/loganalytics"

# The suite on another runtime: make test-lua-5.1 (5.2, 5.3, jit).
# Specs that start their own lua5.4 use build/, hence the dependency.
test-lua-%: build
	cmake -S . -B $(BUILD)/lua-$* -DLUA_VERSION=$* >/dev/null
	cmake --build $(BUILD)/lua-$* --target loganalytics_core -j2 -- --no-print-directory -s
	LA_REPEAT_RUN=1 busted --lua=$(if $(filter jit,$*),luajit,lua$*) --cpath='$(BUILD)/lua-$*/?.so' $(REPEAT_RUN)

# The suite (less OWN_PROCESS_SPECS) under valgrind memcheck: busted runs in-process (no --lua,
# which would re-exec the interpreter outside valgrind). Origins are not tracked by default:
# it finds the same errors at half the cost; VALGRIND_ORIGINS=yes says where an
# uninitialised value came from. VALGRIND_SKIP: specs of Lua logic only (KQL literals,
# workspace lookups), whose C paths (plain queries) the others take under valgrind.
VALGRIND_ORIGINS ?= no
VALGRIND_SKIP = --exclude-pattern=kql_spec --exclude-pattern=workspace_name_spec
check-valgrind: build
	LA_REPEAT_RUN=1 valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	  --errors-for-leak-kinds=definite --track-origins=$(VALGRIND_ORIGINS) \
	  $(LUA) /usr/bin/busted $(REPEAT_RUN) $(VALGRIND_SKIP)
test-valgrind: check-valgrind

# The suite (less OWN_PROCESS_SPECS) with the module built with ASan + UBSan (-DSANITIZE=ON, into
# build/asan/), run by build/asan/asan_lua: a Lua 5.4 host that carries the
# sanitizer runtime itself (fuzz/asan_lua.c), so no LD_PRELOAD reaches the
# processes the specs spawn. Any ASan or UBSan report, or a leak not in
# fuzz/lsan.supp, fails. Depends on build: specs' subprocesses use build/.
ASAN_BUILD ?= $(BUILD)/asan
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0
check-asan: build
	cmake -S . -B $(ASAN_BUILD) -DLUA_VERSION=5.4 -DSANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j2 -- --no-print-directory -s
	LA_REPEAT_RUN=1 $(ASAN_ENV) $(ASAN_BUILD)/asan_lua /usr/bin/busted --cpath='$(ASAN_BUILD)/?.so' $(REPEAT_RUN)

# Allocation-failure sweep (spec/alloc_spec.lua): a query of ~2,100 rows
# (gzip and identity, body worker and threads = false, on_row) run once per
# allocation of the response's path with that allocation failing
# (fuzz/failmalloc.so, LD_PRELOAD). make test runs every 7th; this, every one.
check-alloc: build
	ALLOC_STRIDE=1 busted --lua=$(LUA) spec/alloc_spec.lua

# ThreadSanitizer: the module and fuzz/threads_host built with clang
# -fsanitize=thread into $(TSAN_BUILD); spec/races_spec.lua (part of make
# test, which builds it itself) runs 8 threads that load the module and query
# the local server at once, each in its own lua_State, as nginx's thread pool
# does. Any TSan report fails (fuzz/tsan.supp: none of ours suppressed).
TSAN_BUILD ?= $(BUILD)/tsan
build-tsan:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_C_COMPILER=clang -DLUA_VERSION=5.4 -DTSAN=ON >/dev/null
	cmake --build $(TSAN_BUILD) --target loganalytics_core threads_host -j2 -- --no-print-directory -s
check-tsan: build build-tsan
	busted --lua=$(LUA) spec/races_spec.lua

# libFuzzer (fuzz/README.md), three targets, each run for FUZZ_SECONDS:
#   fuzz_tokenizer        the JSON tokenizer, checked against yajl
#   fuzz_response_parser  the streaming response parser, its sink's invariants
#   fuzz_gunzip           the gzip decoder (ISA-L's or zlib's inflater, as
#                         CMake would pick: GUNZIP_INFLATER), checked against zlib
# Corpora (build/fuzz-corpus*) start from the fixtures, recordings and REST
# examples (fuzz/make_corpus.py) and keep what the runs add. Crash inputs go
# to build/fuzz-artifacts/. Any crash, leak, timeout or UB report fails.
# fuzz-smoke: the CI run, 20 s each.
FUZZ_SECONDS ?= 60
FUZZ_TOKENIZER_MAX_LEN ?= 4096
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined,float-cast-overflow \
  -fno-sanitize-recover=undefined,float-cast-overflow
GUNZIP_INFLATER ?= $(shell pkg-config --exists libisal && echo isal || echo zlib)
FUZZ_RUN = -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
  -artifact_prefix=$(BUILD)/fuzz-artifacts/
fuzz-build:
	mkdir -p $(BUILD)/fuzz-corpus $(BUILD)/fuzz-corpus-parser $(BUILD)/fuzz-corpus-gunzip \
	  $(BUILD)/fuzz-artifacts
	cp spec/fixtures/*.json spec/fixtures/recorded/*.json spec/fixtures/wire/*.json $(BUILD)/fuzz-corpus/
	python3 fuzz/make_corpus.py $(BUILD)/fuzz-corpus
	python3 fuzz/make_corpus.py $(BUILD)/fuzz-corpus-parser --seed-header
	python3 fuzz/make_corpus.py $(BUILD)/fuzz-corpus-gunzip --gunzip
	clang $(FUZZ_CFLAGS) -o $(BUILD)/fuzz_tokenizer \
	  fuzz/tokenizer_diff.c src/json_tokenizer.c src/buffer.c -lyajl
	clang $(FUZZ_CFLAGS) -o $(BUILD)/fuzz_response_parser fuzz/response_parser_fuzz.c \
	  src/response_parser.c src/json_tokenizer.c src/cell.c src/buffer.c \
	  src/event_tape.c src/string_cache.c -lm -pthread
	clang $(FUZZ_CFLAGS) -o $(BUILD)/fuzz_gunzip fuzz/gunzip_diff.c src/gunzip.c \
	  src/gunzip_$(GUNZIP_INFLATER).c src/buffer.c $(if $(filter isal,$(GUNZIP_INFLATER)),-lisal) -lz

fuzz: fuzz-build
	$(BUILD)/fuzz_tokenizer $(FUZZ_RUN) -max_len=$(FUZZ_TOKENIZER_MAX_LEN) $(BUILD)/fuzz-corpus
	$(BUILD)/fuzz_response_parser $(FUZZ_RUN) -max_len=65536 $(BUILD)/fuzz-corpus-parser
	$(BUILD)/fuzz_gunzip $(FUZZ_RUN) -max_len=65536 $(BUILD)/fuzz-corpus-gunzip

fuzz-smoke:
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=20 FUZZ_TOKENIZER_MAX_LEN=65536

# The reference: LDoc (config.ld) into $(DOCS_DIR), not committed (README,
# "Reference"). Fails on any warning: ldoc's --fatalwarnings, and any line
# of its output besides the two it always prints (some reports bypass it).
DOCS_DIR ?= docs
docs:
	@out=$$(ldoc --fatalwarnings -d '$(DOCS_DIR)' . 2>&1); status=$$?; \
	problems=$$(printf '%s\n' "$$out" | grep -v -e '^reading configuration from ' -e '^output written to '); \
	if [ $$status -ne 0 ] || [ -n "$$problems" ]; then \
	  printf '%s\n' "$$problems" >&2; echo "make docs: ldoc warned (exit status $$status)" >&2; exit 1; \
	fi; echo "reference written to $(DOCS_DIR)/index.html"

rock:
	luarocks --lua-version=$(subst lua,,$(LUA)) make rockspec/loganalytics-scm-1.rockspec --tree=$(BUILD)/rocks

# One table: this module vs lua-cjson vs the Azure SDK for JS vs a curl floor (bench/README.md);
# then bench/export.py's: exporting 2,000,000 rows past a 100,000-row cap, serial vs 4 slices at once.
# Installs what it needs (bench/setup.sh), builds, runs; BENCH_ARGS go to bench/run.py.
bench: setup
	SUDO='$(SUDO)' sh bench/setup.sh
	$(MAKE) --no-print-directory build
	LUA=$(LUA) python3 bench/run.py $(BENCH_ARGS)
	LUA=$(LUA) python3 bench/export.py

clean:
	rm -rf $(BUILD)
