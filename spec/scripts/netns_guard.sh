#!/bin/sh
# Run by spec/url_guard_spec.lua as `unshare -n sh spec/scripts/netns_guard.sh OUT`
# (or `unshare -n -m env LA_GUARD_MOUNT=1 sh ...`, see the hosts file below)
# from the repository root: inside a new network namespace (nothing here
# can reach or be reached from the host's network), brings up lo, adds
# 192.0.2.2 (TEST-NET-1) to it, starts the capture server there and the
# project's local server on 127.0.0.1, then runs guard_driver.lua once per
# proxy environment. Writes OUT/results (the driver's lines), OUT/capture.log
# (every byte that reached 192.0.2.2) and OUT/port.
set -u
out=$1
ip link set lo up || exit 2
ip addr add 192.0.2.2/32 dev lo || exit 2

python3 spec/scripts/capture_server.py 192.0.2.2 18080 "$out/capture.log" > "$out/capture.ready" 2>"$out/capture.err" &
capture=$!
python3 server/la_server.py --port 0 > "$out/port" 2>"$out/server.err" &
server=$!
i=0
while [ $i -lt 100 ] && { [ ! -s "$out/port" ] || [ ! -s "$out/capture.ready" ]; }; do
  sleep 0.05
  i=$((i + 1))
done
port=$(cat "$out/port")
if [ -z "$port" ] || [ ! -s "$out/capture.ready" ]; then
  echo "servers did not start" >&2
  kill $capture $server 2>/dev/null
  exit 3
fi

# Each run starts from an empty environment: the host's own proxy
# variables must not decide anything here.
run() {
  group=$1
  shift
  env -i PATH="$PATH" "$@" lua5.4 spec/scripts/guard_driver.lua "$group" "$port" >> "$out/results" 2>&1
}
run plain
run env_http_proxy http_proxy=http://192.0.2.2:18080
run env_http_proxy_bare http_proxy=192.0.2.2:18080
run env_all_proxy ALL_PROXY=http://192.0.2.2:18080
run env_all_proxy_lower all_proxy=socks5://192.0.2.2:18080
run env_HTTP_PROXY HTTP_PROXY=http://192.0.2.2:18080
run env_HTTPS_PROXY HTTPS_PROXY=http://192.0.2.2:18080
run env_no_proxy http_proxy=http://192.0.2.2:18080 no_proxy=127.0.0.1
run env_no_proxy_cidr http_proxy=http://192.0.2.2:18080 NO_PROXY="10.0.0.0/8, 127.0.0.0/8"
run env_no_proxy_other http_proxy=http://192.0.2.2:18080 no_proxy=127.0.0.2,.example.com

# With a mount namespace too (LA_GUARD_MOUNT=1), a hosts file of our own:
# "localhost." goes to the system resolver (libcurl resolves only
# "localhost" itself), and here it says 192.0.2.2. The guard takes the name
# for loopback; the check of the address actually reached must refuse.
if [ "${LA_GUARD_MOUNT:-0}" = 1 ]; then
  printf '127.0.0.1 localhost\n::1 localhost\n192.0.2.2 localhost.\n' > "$out/hosts"
  if mount --bind "$out/hosts" /etc/hosts; then
    run hosts_file
  fi
fi
kill $capture $server 2>/dev/null
wait 2>/dev/null
exit 0
