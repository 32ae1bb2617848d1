#!/bin/sh
# Starts the bundled local server on a free 127.0.0.1 port, runs an example
# against it and stops the server. Run from the repository root:
#   sh examples/run_demo.sh                          examples/demo.lua (make demo)
#   sh examples/run_demo.sh EXAMPLE.lua [ARGS...]    any other example
# The example gets LOGANALYTICS_ENDPOINT (the query API) and
# AZURE_AUTHORITY_HOST (the identity provider) set to the local server, and
# the checkout's module paths; LOGANALYTICS_WORKSPACE and the rest pass through.
set -eu
LUA=${LUA:-lua5.4}
script=${1:-examples/demo.lua}
[ $# -gt 0 ] && shift
port_file=$(mktemp)
python3 server/la_server.py --port 0 > "$port_file" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; rm -f "$port_file"' EXIT INT TERM
for _ in $(seq 1 100); do
  [ -s "$port_file" ] && break
  sleep 0.05
done
port=$(head -n 1 "$port_file")
[ -n "$port" ] || { echo "the local server did not start" >&2; exit 1; }
# on standard error: an example's standard output may be data (CSV)
echo "local Log Analytics server on http://127.0.0.1:$port" >&2
LOGANALYTICS_ENDPOINT="http://127.0.0.1:$port" AZURE_AUTHORITY_HOST="http://127.0.0.1:$port" \
LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" \
  "$LUA" "$script" "$@"
