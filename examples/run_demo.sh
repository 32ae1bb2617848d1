#!/bin/sh
# Starts the bundled local server on a free 127.0.0.1 port, runs demo.lua
# against it and stops the server. Run from the repository root (make demo).
set -eu
LUA=${LUA:-lua5.4}
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
echo "local Log Analytics server on http://127.0.0.1:$port"
LA_ENDPOINT="http://127.0.0.1:$port" \
LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/?.so;;" \
  "$LUA" examples/demo.lua
