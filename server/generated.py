"""Generated tables for la_server.py: large, deterministic, streamed, with a time column.

Standard library only. Used by two entry points:

FAULTS `rows:N[:identity][:SEED]` (faults.py): 200 with the N-row table below (N from 0 to
20,000,000), ids 1..N spread evenly over the generated month, no caps.

POST /v1/workspaces/GENERATED/query (and /search, and inside $batch), usual auth. The workspace
holds one table, `Events`, of ROWS rows (la_server --generated-rows, default 2,000,000), ids
1..ROWS spread evenly over [START, END) = [2025-12-01T00:00:00Z, 2026-01-01T00:00:00Z): a
month that ends at the local server's "now" (ANCHOR), so a duration timespan such as P1D is
the last day of it. Row i (1-based) of an N-row table has
    TimeGenerated = START + floor((i - 1) * (END - START) / N)      (100 ns ticks)
so TimeGenerated increases with Id. The request's `timespan` keeps the rows with
start <= TimeGenerated < end, computed from the bounds (no scan); no timespan: every row.
Query texts (whitespace free around the words, nothing else accepted):
    Events                 the rows in the timespan
    Events | take N        the first N of them (`limit` too)
    Events | count         one row, column Count:long, of how many there are
The caps (POST /_test/config, la_server's docstring) apply to GENERATED only:
    row_cap         more rows than this: the first row_cap rows, then the PartialError below
    size_cap_bytes  the rows' JSON text (the rows array between its brackets, commas
                    included) would exceed this: the rows that fit, then the PartialError
Over a cap the answer is still HTTP 200; the error member follows "tables" (as the service
sends it) with the innermost error code -2133196797 and a message naming
E_QUERY_RESULT_SET_TOO_LARGE (PARTIAL_TEMPLATE below says where the shape comes from).

Columns: Id:long (unique, 1..N), TimeGenerated:datetime (ISO 8601, 7 fractional digits, Z),
Computer:string (300 values), Level:string (3 values), OperationName:string (50 values),
DurationMs:long, CpuPercent:real, Ok:bool, Message:string (about 60 bytes, mostly unique,
some with \\n, \\" and non-ASCII), Properties:dynamic (JSON text, about 100 bytes).

Answers are streamed: Transfer-Encoding: chunked, pieces of about 64 KiB of JSON, gzip
(level 1, one compressobj) when the request accepts it; memory stays flat whatever N.
Headers: x-test-rows (rows in the answer; left out when a size cap may cut it),
x-test-matched-rows (rows the query matched before any cap).
"""

import collections
import datetime as dt
import json
import random
import re
import threading
import zlib

import faults  # imports this module too: use its names at call time only

MAX_ROWS = 20_000_000
TICKS = 10_000_000                       # 100 ns ticks per second
START_UNIX = 1764547200                  # 2025-12-01T00:00:00Z
END_UNIX = 1767225600                    # 2026-01-01T00:00:00Z (la_server's ANCHOR)
SPAN = (END_UNIX - START_UNIX) * TICKS   # the month, in ticks
START_TICKS = START_UNIX * TICKS         # ticks since the Unix epoch

COLUMNS = [("Id", "long"), ("TimeGenerated", "datetime"), ("Computer", "string"),
           ("Level", "string"), ("OperationName", "string"), ("DurationMs", "long"),
           ("CpuPercent", "real"), ("Ok", "bool"), ("Message", "string"),
           ("Properties", "dynamic")]
HEAD = ('{"tables":[{"name":"PrimaryResult","columns":'
        + json.dumps([{"name": n, "type": t} for n, t in COLUMNS], separators=(",", ":"))
        + ',"rows":[').encode()
TAIL = b"]}]}"
PIECE = 64 * 1024      # bytes of JSON text per chunk (before compression)
BATCH = 200            # rows generated at a time (about 60 KB)

# The shape of the service's answer when a result is cut at its caps: HTTP 200, the rows,
# then this error. Shape as in a response recorded from the service and published in
# grafana/grafana pkg/tsdb/azuremonitor/testdata/loganalytics/9-log-analytics-response-error.json
# (commit 0d0434957a27f13bad1f09ee459745abef9aa7a1), the same as spec/fixtures/partial.json;
# message text as the service words its limits ("The results of this query exceed the set
# limit of ...", E_QUERY_RESULT_SET_TOO_LARGE = 0x80DA0003 = -2133196797 as an int32, per
# the Kusto error-code table and https://aka.ms/kustoquerylimits).
TOO_LARGE_CODE = "-2133196797"


def partial_error(limit, unit, shape="details"):
    inner = {"code": TOO_LARGE_CODE,
             "message": f"The results of this query exceed the set limit of {limit} {unit}, so "
                        "not all records were returned (E_QUERY_RESULT_SET_TOO_LARGE, "
                        "0x80DA0003, see https://aka.ms/kustoquerylimits for more information "
                        "and possible solutions).",
             "severity": 2, "severityName": "Error"}
    engine = {"code": "EngineError",
              "message": "Something went wrong processing your query on the server."}
    err = {"code": "PartialError", "message": "There were some errors when processing your query."}
    if shape == "innererror":   # the same errors nested as innererror, not in details
        err["innererror"] = dict(engine, innererror=inner)
    else:
        err["details"] = [dict(engine, innererror=inner)]
    return err


# ---------------------------------------------------------------------------
# Row templates
# ---------------------------------------------------------------------------

N_TEMPLATES = 4099   # a prime: templates do not line up with the ids' other cycles
COMPUTERS = ["%s-%s-%03d" % (role, site, n) for role in ("web", "db", "app", "cache", "batch")
             for site in ("weu", "neu", "eus") for n in range(1, 21)]          # 300
LEVELS = [("Informational", 85), ("Warning", 10), ("Error", 5)]
OPERATIONS = ["Microsoft.%s/%s/%s" % (p, r, a)
              for p, r in (("Compute", "virtualMachines"), ("Storage", "storageAccounts"),
                           ("Web", "sites"), ("Network", "networkSecurityGroups"),
                           ("Sql", "servers/databases"))
              for a in ("read", "write", "delete", "start/action", "restart/action",
                        "listKeys/action", "backup/action", "move/action", "validate/action",
                        "audit/action")]                                        # 50
# Message texts as they appear inside the JSON string (already escaped); %d is the row's Id.
MESSAGES = [
    r"Request %d to \"/api/orders\" completed with status 200 OK",
    r"Request %d failed:\ntimeout after 30 s waiting for upstream",
    "Sauvegarde terminée pour la requête %d (durée normale)",
    "Zeitüberschreitung bei Anfrage %d, erneuter Versuch folgt",
    r"User \"svc-%d\" signed in from 203.0.113.7 via SSO",
    "要求 %d は正常に完了しました — no action needed",
    r"Deployment %d: step 3/7\n\"configure\" finished",
    "Heartbeat from agent, sequence %d, all probes healthy",
]
MESSAGES_WITHOUT_ID = ["Scheduled maintenance window started", "Disk usage above 80%% on /var"]
REGIONS = ["westeurope", "northeurope", "eastus", "japaneast", "australiaeast"]
_templates = {}


def templates(seed):
    """Per-seed list of N_TEMPLATES row format strings; row i uses templates[i % N_TEMPLATES]
    with (Id, date-time, fraction, DurationMs, CPU whole, CPU hundredths, Message number,
    Properties number)."""
    if seed in _templates:
        return _templates[seed]
    rng = random.Random(seed)
    out = []
    levels = [name for name, _ in LEVELS]
    weights = [w for _, w in LEVELS]
    for _ in range(N_TEMPLATES):
        computer = rng.choice(COMPUTERS)
        level = rng.choices(levels, weights)[0]
        op = rng.choice(OPERATIONS)
        ok = "false" if level == "Error" else "true"
        msg = rng.choice(MESSAGES) if rng.random() < 0.97 else \
            rng.choice(MESSAGES_WITHOUT_ID) + "%.0s"  # takes (and drops) the Id
        props = json.dumps(json.dumps({"region": rng.choice(REGIONS), "attempt": 0,
                                       "tags": ["prod", rng.choice(["blue", "green"])],
                                       "client": "agent/1.%d" % rng.randint(0, 9)},
                                      separators=(",", ":")))[1:-1]
        props = props.replace("%", "%%").replace('"attempt\\":0', '"attempt\\":%d')
        out.append('[%d,"%sT%s.%07dZ","' + computer + '","' + level + '","' + op
                   + '",%d,%d.%02d,' + ok + ',"' + msg + '","' + props + '"]')
    if len(_templates) > 8:
        _templates.clear()
    _templates[seed] = out
    return out


_HMS = ["%02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) for s in range(86400)]
_DAYS = {}


def _day(day_number):
    text = _DAYS.get(day_number)
    if text is None:
        text = (dt.date(1970, 1, 1) + dt.timedelta(days=day_number)).isoformat()
        if len(_DAYS) > 4096:
            _DAYS.clear()
        _DAYS[day_number] = text
    return text


def row_time_ticks(i, n):
    """TimeGenerated of row i (1-based) of an n-row table, in ticks since the Unix epoch."""
    return START_TICKS + (i - 1) * SPAN // n


def row_batches(first, last, n, seed):
    """Lists of row texts for ids first..last (inclusive) of an n-row table."""
    tmpl = templates(seed)
    nt = N_TEMPLATES
    hms, day = _HMS, _day
    for lo in range(first, last + 1, BATCH):
        hi = min(last, lo + BATCH - 1)
        out = []
        append = out.append
        t = (lo - 1) * SPAN
        for i in range(lo, hi + 1):
            ticks = START_TICKS + t // n
            t += SPAN
            sec, frac = divmod(ticks, TICKS)
            days, s = divmod(sec, 86400)
            cpu = i * 37 % 10000
            append(tmpl[i % nt] % (i, day(days), hms[s], frac, i * 7919 % 120000,
                                   cpu // 100, cpu % 100, i, i % 7))
        yield out


def id_range(n, start_ticks, end_ticks):
    """[first, last] ids (1-based, last < first when none) of the n-row table's rows with
    start_ticks <= TimeGenerated < end_ticks; None bounds are open."""
    def first_at_or_after(ticks):   # smallest 0-based k with START + floor(k*SPAN/n) >= ticks
        rel = ticks - START_TICKS
        if rel <= 0:
            return 0
        return min(n, -(-rel * n // SPAN))
    lo = 0 if start_ticks is None else first_at_or_after(start_ticks)
    hi = n if end_ticks is None else first_at_or_after(end_ticks)
    return lo + 1, hi


# ---------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------

def body_pieces(first, last, n, seed, row_cap=None, size_cap=None, shape="details"):
    """The answer's JSON text in pieces of about PIECE bytes: rows first..last of the n-row
    table, cut at the caps (then the PartialError)."""
    yield HEAD
    count = max(0, last - first + 1)
    cut = None
    if row_cap is not None and count > row_cap:
        last, cut = first + row_cap - 1, partial_error(row_cap, "records", shape)
    used, sep = 0, ""
    pending, pending_len = [], 0
    for rows in row_batches(first, last, n, seed):
        data = (sep + ",".join(rows)).encode()
        if size_cap is not None and used + len(data) > size_cap:
            for r in rows:   # the last batch that fits in part: row by row
                b = (sep + r).encode()
                if used + len(b) > size_cap:
                    break
                pending.append(b)
                used += len(b)
                sep = ","
            cut = partial_error(size_cap, "bytes", shape)
            break
        used += len(data)
        sep = ","
        pending.append(data)
        pending_len += len(data)
        if pending_len >= PIECE:
            yield b"".join(pending)
            pending, pending_len = [], 0
    if pending:
        yield b"".join(pending)
    yield TAIL if cut is None else b']}],"error":' + faults.dumps(cut) + b"}"


def wire_chunks(pieces, gzip_ok):
    """The chunks of a chunked body carrying the pieces (gzip level 1 when gzip_ok)."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip_ok else None
    for data in pieces:
        if comp:
            data = comp.compress(data)
        if data:
            yield b"%x\r\n%s\r\n" % (len(data), data)
    if comp:
        data = comp.flush()
        if data:
            yield b"%x\r\n%s\r\n" % (len(data), data)
    yield b"0\r\n\r\n"


def stream(h, pieces, gzip_ok, extra=(), chunks=None):
    """200, chunked, the pieces (gzip level 1 when gzip_ok) on la_server handler h;
    chunks: the wire chunks already made (a cached body)."""
    headers = [("Transfer-Encoding", "chunked")] + list(extra)
    if gzip_ok:
        headers.append(("Content-Encoding", "gzip"))
    faults.send_headers(h, 200, headers)
    write = h.wfile.write
    for data in chunks if chunks is not None else wire_chunks(pieces, gzip_ok):
        write(data)


# Bodies of up to CACHE_MAX_ROWS rows are made once and kept (a few, the last
# used): the nginx specs time a client decoding them, with this server on
# the same two cores, so serving them again must cost next to nothing.
CACHE_MAX_ROWS = 200_000
CACHE_ENTRIES = 4
_CACHE = collections.OrderedDict()
_CACHE_LOCK = threading.Lock()


def cached_chunks(n, gzip_ok, seed):
    key = (n, gzip_ok, seed)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    chunks = list(wire_chunks(body_pieces(1, n, n, seed), gzip_ok))
    with _CACHE_LOCK:
        _CACHE[key] = chunks
        while len(_CACHE) > CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return chunks


def serve_rows(h, n, gzip_ok, seed):
    """FAULTS rows:N: the whole n-row table, uncapped."""
    chunks = cached_chunks(n, gzip_ok, seed) if n <= CACHE_MAX_ROWS else None
    stream(h, body_pieces(1, n, n, seed), gzip_ok,
           [("x-test-rows", str(n)), ("x-test-matched-rows", str(n))], chunks)


# ---------------------------------------------------------------------------
# The GENERATED workspace
# ---------------------------------------------------------------------------

QUERY_RE = re.compile(r"\s*Events\s*(?:\|\s*(?:(?P<take>take|limit)\s+(?P<n>\d+)|"
                      r"(?P<count>count))\s*)?")


def parse_query(text):
    """('rows', take or None) or ('count', None); None when the text is not one we answer."""
    m = QUERY_RE.fullmatch(text)
    if not m:
        return None
    if m.group("count"):
        return "count", None
    return "rows", int(m.group("n")) if m.group("take") else None


def answer(h, text, bounds, rows, config, gzip_ok):
    """Answers a GENERATED query on handler h. bounds: (start, end) ticks since the Unix epoch
    or None (no timespan); rows: the table's size; config: la_server's test config."""
    parsed = parse_query(text)
    if parsed is None:
        raise faults.ApiError(400, "BadArgumentError", "The request had some invalid properties", {
            "code": "SemanticError", "message": "A semantic error occurred.",
            "innererror": {"code": "SEM0100",
                           "message": "GENERATED answers only 'Events', 'Events | take N' and "
                                      f"'Events | count', not {text!r}"}})
    kind, take = parsed
    first, last = id_range(rows, *(bounds or (None, None)))
    matched = max(0, last - first + 1)
    if kind == "count":
        body = faults.dumps({"tables": [{"name": "PrimaryResult",
                                  "columns": [{"name": "Count", "type": "long"}],
                                  "rows": [[matched]]}]})
        return h.send(200, body, [("x-test-rows", "1"), ("x-test-matched-rows", str(matched))])
    if take is not None:
        last = min(last, first + take - 1)
        matched = max(0, last - first + 1)
    row_cap, size_cap = config.get("row_cap"), config.get("size_cap_bytes")
    extra = [("x-test-matched-rows", str(matched))]
    if size_cap is None:
        extra.append(("x-test-rows", str(matched if row_cap is None else min(matched, row_cap))))
    pieces = body_pieces(first, last, rows, 0, row_cap, size_cap,
                         config.get("partial_shape", "details"))
    if getattr(h, "capture", False):   # inside $batch: the whole body, not a stream
        return h.send(200, b"".join(pieces), extra)
    stream(h, pieces, gzip_ok, extra)
