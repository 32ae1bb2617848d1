# loganalytics: the two commands a new machine needs are `make demo` and `make test`.
LUA ?= lua5.4
BUILD ?= build
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian 12 packages for building, testing and the demo
DEB_PACKAGES = build-essential cmake pkg-config curl python3 \
  lua5.4 liblua5.4-dev lua5.1 liblua5.1-dev luarocks lua-busted \
  libcurl4-openssl-dev libcjson-dev libyajl-dev libssl-dev zlib1g-dev openssl valgrind strace

.PHONY: all setup build demo test test-valgrind rock clean fuzz bench

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

# Starts the local server, runs examples/demo.lua against it, stops the server.
demo: setup build
	LUA=$(LUA) sh examples/run_demo.sh

test: build
	busted --lua=$(LUA)

# The whole suite under valgrind memcheck: busted runs in-process (no --lua,
# which would re-exec the interpreter outside valgrind).
test-valgrind: build
	valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
	  --errors-for-leak-kinds=definite --track-origins=yes \
	  $(LUA) /usr/bin/busted

# libFuzzer over the JSON tokenizer, checked against yajl (fuzz/README.md).
FUZZ_SECONDS ?= 60
fuzz:
	mkdir -p $(BUILD)/fuzz-corpus
	cp spec/fixtures/*.json ../shared/recorded/*.json ../shared/wire/*.json $(BUILD)/fuzz-corpus/
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o $(BUILD)/fuzz_tokenizer \
	  fuzz/tokenizer_diff.c src/json_tokenizer.c src/buffer.c -lyajl
	$(BUILD)/fuzz_tokenizer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 $(BUILD)/fuzz-corpus

rock:
	luarocks --lua-version=$(subst lua,,$(LUA)) make rockspec/loganalytics-scm-1.rockspec --tree=$(BUILD)/rocks

# One table: this module vs lua-cjson vs the Azure SDK for JS vs a curl floor (bench/README.md).
# Installs what it needs (bench/setup.sh), builds, runs; BENCH_ARGS go to bench/run.py.
bench: setup
	SUDO='$(SUDO)' sh bench/setup.sh
	$(MAKE) --no-print-directory build
	LUA=$(LUA) python3 bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)
