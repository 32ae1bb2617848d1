#!/bin/sh
# What bench/ needs beyond `make setup` (make bench runs this): the Debian packages
# lua-cjson (contender 3), lua-system (a wall clock for Lua), time (/usr/bin/time for
# peak RSS), valgrind (callgrind), curl and openssl; then the Azure SDK for JavaScript
# in bench/js (npm ci, pinned by package-lock.json). Without node/npm the SDK
# contender is reported "n/a" and the rest still runs.
# SUDO is "sudo" when not root (the Makefile passes its own).
set -eu
cd "$(dirname "$0")"
SUDO=${SUDO-$([ "$(id -u)" = 0 ] || echo sudo)}
missing=""
for p in lua-cjson lua-system time valgrind curl openssl; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "bench: installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  cd js
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
     || [ package.json -nt node_modules/.package-lock.json ]; then
    echo "bench: npm ci in bench/js"
    npm ci --no-audit --no-fund --loglevel=error
  fi
else
  echo "bench: node/npm not found: the Azure SDK contender will be n/a (it needs node >= 20)" >&2
fi
