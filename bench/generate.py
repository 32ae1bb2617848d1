#!/usr/bin/env python3
"""Deterministic AzureActivity-like query responses for the benchmark.

    python3 bench/generate.py [--dir bench/data] N [N ...]

Writes <dir>/activity-<N>.json (the v1 query API's response body, one table
"PrimaryResult" of N rows) and <dir>/activity-<N>.json.gz (the same bytes,
gzip level 6), once: files that exist are kept (a cache), so delete them to
regenerate. Both are written to temporary names and renamed when complete.
Prints one line per size: "N json_bytes gz_bytes path".

The same N always gives the same bytes (a seeded Mersenne Twister driven
only through getrandbits, which is stable across Python versions).

Columns (15: the 13 of the issue plus a real and a bool, so that every
conversion path of the Lua baseline is exercised):
  TimeGenerated datetime, OperationName string, Category string, Level string,
  ActivityStatus string, Caller string (~8% null), CallerIpAddress string,
  CorrelationId guid (unique), ResourceGroup string, ResourceProvider string,
  SubscriptionId guid (4 distinct), DurationMs long (~1% above 2^53),
  Properties dynamic (JSON text as a string, ~150 bytes, escaped quotes,
  a \\n, a \\u00e9 and a slash), CpuPercent real (some "NaN"/"Infinity"
  strings, some null), IsCritical bool.
About 480 bytes a row: 500k rows are ~240 MB.
"""

import argparse
import gzip
import json
import os
import random
import sys

COLUMNS = [
    ("TimeGenerated", "datetime"),
    ("OperationName", "string"),
    ("Category", "string"),
    ("Level", "string"),
    ("ActivityStatus", "string"),
    ("Caller", "string"),
    ("CallerIpAddress", "string"),
    ("CorrelationId", "guid"),
    ("ResourceGroup", "string"),
    ("ResourceProvider", "string"),
    ("SubscriptionId", "guid"),
    ("DurationMs", "long"),
    ("Properties", "dynamic"),
    ("CpuPercent", "real"),
    ("IsCritical", "bool"),
]

OPERATIONS = [
    ("Microsoft.Compute/virtualMachines/write", "Microsoft.Compute"),
    ("Microsoft.Compute/virtualMachines/start/action", "Microsoft.Compute"),
    ("Microsoft.Compute/virtualMachines/deallocate/action", "Microsoft.Compute"),
    ("Microsoft.Storage/storageAccounts/listKeys/action", "Microsoft.Storage"),
    ("Microsoft.Network/networkSecurityGroups/write", "Microsoft.Network"),
    ("Microsoft.Network/publicIPAddresses/delete", "Microsoft.Network"),
    ("Microsoft.Resources/deployments/write", "Microsoft.Resources"),
    ("Microsoft.Authorization/roleAssignments/write", "Microsoft.Authorization"),
    ("Microsoft.KeyVault/vaults/secrets/read", "Microsoft.KeyVault"),
    ("Microsoft.Web/sites/restart/action", "Microsoft.Web"),
    ("Microsoft.Insights/diagnosticSettings/write", "Microsoft.Insights"),
    ("Microsoft.OperationalInsights/workspaces/sharedKeys/action", "Microsoft.OperationalInsights"),
]
CATEGORIES = ["Administrative", "Administrative", "Administrative", "Policy", "Security",
              "ServiceHealth", "Autoscale", "Recommendation"]
LEVELS = ["Informational", "Informational", "Informational", "Warning", "Error", "Critical"]
STATUSES = ["Started", "Succeeded", "Succeeded", "Accepted", "Failed"]
CALLERS = ["alice@contoso.com", "bob@contoso.com", "ci-pipeline@contoso.com",
           "0b7e5c1a-2f3d-4e5f-8a9b-1c2d3e4f5a6b", "Microsoft.Advisor",
           "carol.o'neil@fabrikam.example", "deploy-bot@contoso.com"]
GROUPS = ["rg-prod-web", "rg-prod-data", "rg-staging", "rg-dev-eastus", "rg-shared-network",
          "rg-monitoring", "rg-sandbox-carol", "rg-batch-jobs"]
SUBSCRIPTIONS = ["6f1a2b3c-4d5e-4f60-8a71-92b3c4d5e6f7", "a0b1c2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d",
                 "11111111-2222-4333-8444-555555555555", "fedcba98-7654-4321-8fed-cba987654321"]
HTTP_CODES = [200, 200, 201, 202, 400, 403, 409]
REGIONS = ["eastus", "westeurope", "southeastasia", "uksouth"]
BASE_EPOCH_DAY = 19723  # 2024-01-01

_J = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _two(n):
    return "%02d" % n


def _date_of(day):
    # civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    z = day + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return "%04d-%02d-%02d" % (y + (m <= 2), m, d)


def rows(n):
    """Yields each row already encoded as JSON text ("[...]")."""
    rng = random.Random(20240501 + n)
    bits = rng.getrandbits
    dates = {}
    for i in range(n):
        r = bits(64)
        # time: spread over ~30 days, increasing with i, 7 fractional digits as the service sends
        t = i * (2_592_000_0000000 // max(n, 1)) + (r & 0xFFFFF)
        secs, frac = divmod(t, 10_000_000)
        day, s = divmod(secs, 86400)
        date = dates.get(day)
        if date is None:
            date = dates[day] = _date_of(BASE_EPOCH_DAY + day)
        ts = "%sT%02d:%02d:%02d.%07dZ" % (date, s // 3600, s // 60 % 60, s % 60, frac)
        op, provider = OPERATIONS[(r >> 20) % len(OPERATIONS)]
        category = CATEGORIES[(r >> 24) & 7]
        level = LEVELS[(r >> 27) % len(LEVELS)]
        status = STATUSES[(r >> 30) % len(STATUSES)]
        caller = None if (r >> 33) % 12 == 0 else CALLERS[(r >> 37) % len(CALLERS)]
        ip = "10.%d.%d.%d" % ((r >> 40) & 255, (r >> 48) & 255, 1 + ((r >> 56) % 254))
        g = bits(128)
        h = "%032x" % g
        corr = "%s-%s-4%s-%x%s-%s" % (h[:8], h[8:12], h[13:16], 8 | (g >> 62 & 3), h[17:20], h[20:])
        group = GROUPS[(r >> 3) & 7]
        sub = SUBSCRIPTIONS[(r >> 6) & 3]
        r2 = bits(64)
        if r2 % 100 == 0:
            duration = (1 << 53) + (r2 >> 8)          # beyond 2^53: doubles lose it
        else:
            duration = (r2 >> 12) % 120_000
        region = REGIONS[(r2 >> 7) & 3]
        # dynamic: JSON text sent as a JSON string, so its quotes arrive escaped
        props = ('{"eventCategory":"%s","entity":"/resourceGroups/%s",'
                 '"message":"%s by \\"%s\\"\\n%s","hierarchy":"Caf\\u00e9/%s",'
                 '"statusCode":%d}') % (
            category, group, op.rsplit("/", 1)[-1], (caller or "system")[:8],
            status, region, HTTP_CODES[(r2 >> 40) % len(HTTP_CODES)])
        rc = (r2 >> 50) % 64
        if rc == 0:
            cpu = '"NaN"'
        elif rc == 1:
            cpu = '"Infinity"'
        elif rc == 2:
            cpu = "null"
        else:
            cpu = "%.3f" % (((r2 >> 20) % 100000) / 1000.0)
        critical = "true" if level == "Critical" else "false"
        yield ('["%s","%s","%s","%s","%s",%s,"%s","%s","%s","%s","%s",%d,%s,%s,%s]' % (
            ts, op, category, level, status, "null" if caller is None else _J(caller),
            ip, corr, group, provider, sub, duration, _J(props), cpu, critical))


def write(n, directory):
    path = os.path.join(directory, "activity-%d.json" % n)
    gz_path = path + ".gz"
    if os.path.exists(path) and os.path.exists(gz_path):
        return path, os.path.getsize(path), os.path.getsize(gz_path)
    os.makedirs(directory, exist_ok=True)
    tmp, gz_tmp = path + ".tmp%d" % os.getpid(), gz_path + ".tmp%d" % os.getpid()
    head = ('{"tables":[{"name":"PrimaryResult","columns":[%s],"rows":[' % ",".join(
        '{"name":"%s","type":"%s"}' % c for c in COLUMNS)).encode()
    try:
        with open(tmp, "wb") as out, open(gz_tmp, "wb") as gz_raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=gz_raw, compresslevel=6,
                              mtime=0) as gz:
            chunk = [head]
            size = len(head)
            first = True
            for row in rows(n):
                b = (row if first else "," + row).encode()
                first = False
                chunk.append(b)
                size += len(b)
                if size > 1 << 20:
                    data = b"".join(chunk)
                    out.write(data)
                    gz.write(data)
                    chunk, size = [], 0
            chunk.append(b"]}]}")
            data = b"".join(chunk)
            out.write(data)
            gz.write(data)
        os.replace(gz_tmp, gz_path)
        os.replace(tmp, path)
    finally:
        for p in (tmp, gz_tmp):
            if os.path.exists(p):
                os.unlink(p)
    return path, os.path.getsize(path), os.path.getsize(gz_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
    ap.add_argument("sizes", nargs="+", type=int)
    args = ap.parse_args()
    for n in args.sizes:
        path, size, gz_size = write(n, args.dir)
        print(n, size, gz_size, path, flush=True)


if __name__ == "__main__":
    sys.exit(main())
