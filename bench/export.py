#!/usr/bin/env python3
"""Exports 2,000,000 rows past a 100,000-row cap: serial slices vs concurrency 4.

    python3 bench/export.py [--rows 2000000] [--row-cap 100000] [--concurrency 1,4]
                            [--query-delay-ms 0,1000] [--runs 1]

From the repository root, after `make build`; `make bench` runs it after bench/run.py.
Starts server/la_server.py (plain http on 127.0.0.1) and, for each concurrency, runs
spec/scripts/export_rows.lua in a lua process of its own: client:export("Events") over the
GENERATED workspace's month, which checks every Id comes once and in order. Prints one
table: rows/s (the export's own clock) and the process's peak RSS (VmHWM), medians. Each
concurrency runs with the server answering at once (the local server, on the same two cores,
is then the bottleneck) and with a wait of --query-delay-ms before each answer, as the
service takes time to run each query: there concurrency overlaps the waits.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LUA = os.environ.get("LUA", "lua5.4")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--row-cap", type=int, default=100_000)
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--query-delay-ms", default="0,1000")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, "server/la_server.py", "--port", "0",
                               "--watch-pid", str(os.getpid())],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(server.stdout.readline().strip())
        endpoint = f"http://127.0.0.1:{port}"
        def configure(delay_ms):
            config = json.dumps({"row_cap": args.row_cap, "generated_rows": args.rows,
                                 "query_delay_ms": delay_ms}).encode()
            urllib.request.urlopen(urllib.request.Request(
                endpoint + "/_test/config", data=config, headers={"Content-Type": "application/json"}))
        env = dict(os.environ, LUA_PATH="lua/?.lua;lua/?/init.lua;;", LUA_CPATH="build/?.so;;")
        print(f"export of {args.rows:,} rows (GENERATED, row_cap {args.row_cap:,}), "
              f"{LUA}, nproc {os.cpu_count()}, median of {args.runs}")
        print()
        print("| server wait per query | concurrency | rows/s | seconds | slices | splits | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        failed = False
        for delay in [int(x) for x in args.query_delay_ms.split(",")]:
            configure(delay)
            for c in [int(x) for x in args.concurrency.split(",")]:
                runs = []
                for _ in range(args.runs):
                    out = subprocess.run([LUA, "spec/scripts/export_rows.lua", endpoint, str(c)],
                                         cwd=ROOT, env=env, capture_output=True, text=True).stdout
                    parts = out.split()
                    if not parts or parts[0] != "ok" or int(parts[1]) != args.rows:
                        print(f"| {delay} ms | {c} | ERR: {out.strip()} | | | | |")
                        failed = True
                        break
                    runs.append(parts)
                if len(runs) == args.runs:
                    seconds = statistics.median(float(p[6]) for p in runs)
                    peak = statistics.median(int(p[7]) for p in runs)
                    print(f"| {delay} ms | {c} | {args.rows / seconds:,.0f} | {seconds:.2f} | "
                          f"{runs[0][4]} | {runs[0][5]} | {peak / 1024:.1f} MB |")
        return 1 if failed else 0
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
