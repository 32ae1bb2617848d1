#!/usr/bin/env python3
"""Memory probe: samples a process's resident set size until told to stop.

    python3 spec/scripts/rss_probe.py PID [--interval-ms 20] [--seconds S]
                                         [--max-seconds 900] --out FILE

Reads VmRSS from /proc/PID/status every interval until SIGTERM or SIGINT, S seconds (or
--max-seconds: a probe nobody stopped ends by itself), or the process's end. Once it can
be stopped it writes {"running": true} to FILE (wait for that first: a SIGTERM before it
kills the probe without a report); when it stops it replaces FILE (atomically) with the
report:
    {"start_kb", "max_kb", "end_kb", "samples"}
(the first, largest and last readings in kB, and how many there were; the kB values are
null when not one reading was made). Standard library only.
"""

import argparse
import time


from probe_common import Stop, ignore_signals, stop_on_signals, write_json


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("pid", type=int)
    ap.add_argument("--interval-ms", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--max-seconds", type=float, default=900,
                    help="stop after this long anyway (a probe nobody stopped)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    start = peak = end = None
    count = 0
    deadline = time.monotonic() + min(args.max_seconds, args.seconds or args.max_seconds)
    stop_on_signals()
    try:
        write_json(args.out, {"running": True})   # ready: a SIGTERM now gets the report
        while time.monotonic() < deadline:
            kb = rss_kb(args.pid)
            if kb is None:
                break   # the process is gone (or has no memory left: a zombie)
            start = kb if start is None else start
            peak = kb if peak is None else max(peak, kb)
            end, count = kb, count + 1
            time.sleep(args.interval_ms / 1000)
    except Stop:
        pass
    ignore_signals()
    write_json(args.out, {"start_kb": start, "max_kb": peak, "end_kb": end, "samples": count})


if __name__ == "__main__":
    main()
