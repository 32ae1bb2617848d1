"""What the probes (ping_probe.py, rss_probe.py) share: stopping on a signal and
writing the report atomically. Standard library only."""

import json
import os
import signal


class Stop(Exception):
    """Raised in the probe's loop by SIGTERM or SIGINT: time to report."""


def _stop(*_):
    raise Stop()


def stop_on_signals():
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def ignore_signals():
    """While the report is written: a second SIGTERM must not cut it short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def write_json(path, value):
    """Replaces path with value as JSON: a reader never sees half a report."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
    os.replace(tmp, path)
