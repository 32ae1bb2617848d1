#!/usr/bin/env python3
"""Latency probe: GETs a URL over one keep-alive connection every interval and reports.

    python3 spec/scripts/ping_probe.py URL [--interval-ms 5] [--seconds S] [--timeout 10]
                                          [--max-seconds 900] --out FILE

Pings URL (http:// or https://; https unverified: it measures time, not trust) with
http.client, reusing the connection and reconnecting when it drops, one ping every
interval (the next starts at once when a ping took longer). Stops on SIGTERM or SIGINT,
or after S seconds (or --max-seconds: a probe nobody stopped ends by itself). Once it can
be stopped it writes {"running": true} to FILE (wait for that before the work you
measure: a SIGTERM before it kills the probe without a report);
when it stops it replaces FILE (atomically: a temporary file renamed) with the report:
    {"count", "p50_ms", "p99_ms", "max_ms", "errors", "samples": [ms, ...]}
count and the percentiles are over the pings that answered 2xx (their whole body read);
errors counts the others (a status >= 300, a refused or dropped connection, a timeout).
Percentiles are nearest-rank; null when there is no sample. Standard library only.
"""

import argparse
import http.client
import math
import ssl
import sys
import time
from urllib.parse import urlsplit


from probe_common import Stop, ignore_signals, stop_on_signals, write_json


def percentile(sorted_ms, p):
    if not sorted_ms:
        return None
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("url")
    ap.add_argument("--interval-ms", type=float, default=5)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--max-seconds", type=float, default=900,
                    help="stop after this long anyway (a probe nobody stopped)")
    ap.add_argument("--timeout", type=float, default=10, help="seconds per ping")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname:
        sys.exit("ping_probe: the URL must be http:// or https://")
    target = (url.path or "/") + ("?" + url.query if url.query else "")

    def connect():
        if url.scheme == "https":
            return http.client.HTTPSConnection(url.hostname, url.port, timeout=args.timeout,
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection(url.hostname, url.port, timeout=args.timeout)

    samples, errors, conn = [], 0, None
    interval = args.interval_ms / 1000
    deadline = time.monotonic() + min(args.max_seconds, args.seconds or args.max_seconds)
    stop_on_signals()
    try:
        write_json(args.out, {"running": True})   # ready: a SIGTERM now gets the report
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = connect()
                conn.request("GET", target)
                resp = conn.getresponse()
                resp.read()
                ms = (time.monotonic() - t0) * 1000
                if 200 <= resp.status < 300:
                    samples.append(round(ms, 3))
                else:
                    errors += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            next_at = max(next_at + interval, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))
    except Stop:
        pass
    ignore_signals()
    ordered = sorted(samples)
    write_json(args.out, {"count": len(samples), "p50_ms": percentile(ordered, 50),
                          "p99_ms": percentile(ordered, 99),
                          "max_ms": ordered[-1] if ordered else None,
                          "errors": errors, "samples": samples})


if __name__ == "__main__":
    main()
