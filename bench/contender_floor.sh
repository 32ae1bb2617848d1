#!/bin/sh
# Contender 5: the floor: the same request with the curl CLI, the gzip body
# decompressed (--compressed) and written to /dev/null, no parsing.
#   sh bench/contender_floor.sh ENDPOINT ROWS [CA_CERT]
# curl times itself (time_total: connect to last byte); bytes= is what came over
# the wire (the compressed size when gzip was used).
set -u
endpoint=$1 rows=$2 ca=${3:-}
set --
[ -n "$ca" ] && set -- --cacert "$ca"
out=$(curl -sS --fail --compressed "$@" -o /dev/null \
  -w 'BENCH status=ok seconds=%{time_total} rows=-1 bytes=%{size_download} encoding=%header{content-encoding}\n' \
  -X POST -H 'Content-Type: application/json' -H 'X-Api-Key: x' \
  --data-raw '{"query":"AzureActivity | where TimeGenerated > ago(30d)"}' \
  "$endpoint/v1/workspaces/bench-$rows/query" 2>&1) || {
  echo "BENCH status=error msg=curl: $(echo "$out" | tr '\n' ' ')"; exit 1; }
echo "$out"
