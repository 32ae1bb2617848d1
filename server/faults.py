"""Fault injection for la_server.py: the FAULTS workspace, and the TLS test certificates.

Standard library only, plus the `openssl` command line tool (make_tls_certs).

POST /v1/workspaces/FAULTS/query (usual auth); the query text is `name[:arg[:arg...]]`.
"success" below is SUCCESS_BODY (3 rows, columns n:long and s:string), gzip when accepted;
errors use the service's body shape {"error":{"message","code","correlationId","innererror"?}}
(gzip when accepted too, like every other error of la_server).

  throttle:SECONDS            429 ThrottledError, Retry-After: SECONDS
  throttle_ms:MS              429 ThrottledError, x-ms-retry-after-ms: MS (no Retry-After)
  throttle_date:SECONDS       429 ThrottledError, Retry-After: IMF-fixdate (GMT) of
                              ceil(now + SECONDS), so at least SECONDS after the Date header
  flaky:KEY:N:STATUS[:RA]     the first N requests with KEY get STATUS (a fitting service error
                              body; 504 is the recorded GatewayTimeout), with Retry-After: RA if
                              given; later ones succeed
  flaky_reset:KEY:N           the first N requests with KEY: TCP RST right after the request is
                              read, no response; later ones succeed
                              (one counter per KEY, shared by flaky and flaky_reset; cleared by
                              POST /_test/reset; GET /_test/faults shows them)
  reset_mid_body              200, Content-Length of BIG_BODY (identity), half of it, TCP RST
  truncate_body               200, Content-Length of BIG_BODY (identity), half of it, FIN
  truncate_gzip               200, Content-Encoding: gzip, the first half of gzip(BIG_BODY),
                              Content-Length of that half (complete as far as HTTP can tell)
  gzip_bad_crc                200, gzip(BIG_BODY) whole but for a wrong CRC-32 in its trailer
  gzip_header_crc             200, BIG_BODY gzipped with a file name, a comment and a header CRC
                              in its gzip header, sent in 7-byte chunks (a valid member)
  slow_headers:SECONDS        sleeps SECONDS before the status line, then success
  stall:SECONDS               200, Content-Length of BIG_BODY (identity), its first 1024 bytes,
                              SECONDS of silence, then the rest
  invalid_json                200, INVALID_JSON (gzip when accepted)
  wrong_types                 200, WRONG_TYPES (cells that do not fit their column types)
  long_overflow               200, LONG_OVERFLOW (long cells beyond 64 bits, and 1e400)
  deep:DEPTH                  200, one dynamic cell nested DEPTH levels: [{"a":[{"a":...1...}]}]
  rows:N[:identity][:SEED]    200, the N-row generated table (N 0 to 20,000,000; columns Id,
                              TimeGenerated, ... as in server/generated.py), streamed chunked,
                              gzip (level 1) when accepted unless "identity" is given; SEED
                              (a number, default 0) varies the cells but not Id or
                              TimeGenerated; headers x-test-rows: N, x-test-matched-rows: N
  sleep:MS                    success after MS milliseconds (0 to 3,600,000); the request's
                              own thread sleeps, so many run at once
  big:MB[:identity]           200, about MB megabytes (10^6 bytes) of AzureActivity-like rows,
                              chunked, gzip (level 1) when accepted unless "identity" is
                              given; header x-test-rows: rows
  html502                     502, Content-Type: text/html, HTML502 (identity)
  bad_chunk                   200, chunked, SUCCESS_BODY in one chunk whose size line is not hex
  chunk_cut                   200, chunked, a chunk announced longer than the bytes sent, then FIN
  huge_header:KB              200, SUCCESS_BODY after a header line of KB kilobytes (1 to 10000)
  long_length                 200, Content-Length 100 bytes more than SUCCESS_BODY, then FIN
  short_length                200, Content-Length 10 bytes less than SUCCESS_BODY (the rest
                              stays unread on the connection, which is closed)
  bad_gzip                    200, Content-Encoding: gzip, a body that is not gzip data
  bad_status_line             a status line that is not HTTP
Anything else: 400 BadArgumentError, innererror code UnknownApiError (bad arguments:
innererror code InvalidFaultArgumentError).

POST /v1/workspaces/ECHO/query: a careless gateway in front of the service, answered before
any authentication; it quotes the request back: the request target (with any `api_key=`
query) and the Authorization and X-Api-Key headers. The query text picks the answer
(PAD: that many filler characters before the quote, to move it across an excerpt's cut):

  html404[:PAD]               404, text/html, the quote HTML-escaped
  gateway502[:PAD]            502, text/html, the quote raw (as nginx's debug pages do)
  json400                     400, the service's error shape: the quote in message, code,
                              details and nested innererror messages
  partial                     200, a table and a PartialError whose message and details quote it
  text401                     401, text/plain, the quote raw
"""

import email.utils
import html as html_lib
import gzip
import http
import json
import math
import os
import random
import re
import socket
import struct
import subprocess
import threading
import time
import uuid
import zlib

import generated

JSON_CT = "application/json; charset=utf-8"


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


SUCCESS_BODY = (b'{"tables":[{"name":"PrimaryResult","columns":[{"name":"n","type":"long"},'
                b'{"name":"s","type":"string"}],"rows":[[1,"a"],[2,"b"],[3,"c"]]}]}')


def _big_body():
    """~200 KB of valid JSON, deterministic: columns n:long, s:string, 2000 rows."""
    rows = ",".join('[%d,"row %06d %s"]' % (i, i, "abcdefghij" * 8) for i in range(2000))
    return ('{"tables":[{"name":"PrimaryResult","columns":[{"name":"n","type":"long"},'
            '{"name":"s","type":"string"}],"rows":[' + rows + ']}]}').encode("ascii")


BIG_BODY = _big_body()
BIG_ROWS = 2000
STALL_PREFIX = 1024

INVALID_JSON = b'{"tables":[{"name":"x","columns":[#garbage%%}]]<<this is not JSON>>\xc3\xa9\\'

WRONG_TYPES = (b'{"tables":[{"name":"PrimaryResult","columns":['
               b'{"name":"l","type":"long"},{"name":"b","type":"bool"},'
               b'{"name":"r","type":"real"},{"name":"d","type":"datetime"},'
               b'{"name":"i","type":"int"}],"rows":['
               b'["abc",2,"x",12,{"a":1}],'
               b'[true,"maybe",2.5,"2026-01-01T00:00:00Z",7],'
               b'[1.5,true,null,null,null]]}]}')

LONG_OVERFLOW = (b'{"tables":[{"name":"PrimaryResult","columns":[{"name":"v","type":"long"}],'
                 b'"rows":[[9223372036854775808],[-9223372036854775809],'
                 b'[18446744073709551616],[1e400]]}]}')

HTML502 = (b"<html><head><title>502 Bad Gateway</title></head><body><center>"
           b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>")

MAX_DEPTH = 10_000_000
MAX_MB = 4096


# ---------------------------------------------------------------------------
# Errors in the service's shape
# ---------------------------------------------------------------------------

class ApiError(Exception):
    """An error answered with the service's body shape:
    {"error":{"message","code","correlationId","innererror"?}}.
    la_server.py uses this one too."""

    def __init__(self, status, code, message, inner=None, headers=()):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.inner, self.headers = inner, list(headers)

    def body(self):
        err = {"message": self.message, "code": self.code, "correlationId": str(uuid.uuid4())}
        if self.inner is not None:
            err["innererror"] = self.inner
        return dumps({"error": err})


STATUS_ERRORS = {  # status -> (code, message, innererror or None)
    408: ("RequestTimeout", "The request timed out", None),
    429: ("ThrottledError", "Too many requests, try again later", None),
    500: ("InternalServerError", "An unexpected error occurred while processing the request",
          None),
    502: ("BadGateway", "Bad gateway", None),
    503: ("ServiceUnavailable", "The service is temporarily unavailable, try again later",
          None),
    # as in recorded/js-monitor-query_recording_servertimeoutinseconds.json
    504: ("GatewayTimeout", "Gateway timeout",
          {"code": "GatewayTimeout", "message": "Connection error",
           "statusDetails": {"code": "ESOCKETTIMEDOUT", "connect": False}}),
}


def status_error(status, headers=()):
    if status in STATUS_ERRORS:
        code, message, inner = STATUS_ERRORS[status]
    else:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        code = re.sub(r"[^A-Za-z0-9]", "", phrase.title()) + "Error"
        message, inner = phrase, None
    return ApiError(status, code, message, inner, headers)


def throttled(headers):
    return status_error(429, headers)


def bad_fault(message, code="InvalidFaultArgumentError"):
    return ApiError(400, "BadArgumentError", "The request had some invalid properties",
                      {"code": code, "message": message})


# ---------------------------------------------------------------------------
# Per-KEY counters (flaky, flaky_reset)
# ---------------------------------------------------------------------------

_lock = threading.Lock()
_counters = {}


def reset():
    with _lock:
        _counters.clear()


def counters():
    with _lock:
        return dict(_counters)


def _count(key):
    with _lock:
        _counters[key] = _counters.get(key, 0) + 1
        return _counters[key]


# ---------------------------------------------------------------------------
# Argument parsing
# ---------------------------------------------------------------------------

def _int(text, what, lo=0, hi=None):
    if not re.fullmatch(r"\d+", text or ""):
        raise bad_fault(f"{what} must be a non-negative integer, not {text!r}")
    n = int(text)
    if n < lo or (hi is not None and n > hi):
        raise bad_fault(f"{what} must be between {lo} and {hi}, not {n}")
    return n


def _num(text, what, hi):
    if not re.fullmatch(r"\d+(\.\d+)?|\.\d+", text or ""):
        raise bad_fault(f"{what} must be a non-negative number, not {text!r}")
    x = float(text)
    if x > hi:
        raise bad_fault(f"{what} must be at most {hi}, not {x}")
    return x


def _nargs(name, args, lo, hi=None):
    hi = lo if hi is None else hi
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise bad_fault(f"fault '{name}' takes {want} argument(s), got {len(args)}")


# ---------------------------------------------------------------------------
# Low-level sending
# ---------------------------------------------------------------------------

def _headers(h, status, extra):
    """Status line and headers (Server, Date, Content-Type, x-ms-request-id, Vary + extra)."""
    h.send_response(status)
    names = {k.lower() for k, _ in extra}
    for k, v in (("Content-Type", JSON_CT), ("x-ms-request-id", str(uuid.uuid4())),
                 ("Vary", "Accept-Encoding")):
        if k.lower() not in names:
            h.send_header(k, v)
    for k, v in extra:
        h.send_header(k, v)
    h.end_headers()


send_headers = _headers  # generated.py streams with it


def rst(h):
    """Abort the connection with a TCP RST (SO_LINGER {1, 0}, then close); no more I/O on it."""
    h.close_connection = True
    sock = h.connection
    try:
        h.wfile.flush()
    except OSError:
        pass
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    # rfile holds the socket's only io reference (wfile is a plain writer): closing both
    # closes the descriptor now; StreamRequestHandler.finish copes with that.
    try:
        h.rfile.close()
    except OSError:
        pass
    sock.close()


# ---------------------------------------------------------------------------
# big:MB — AzureActivity-like rows, generated while streaming
# ---------------------------------------------------------------------------

BIG_COLUMNS = [("TimeGenerated", "datetime"), ("OperationName", "string"),
               ("Category", "string"), ("Level", "string"), ("ActivityStatus", "string"),
               ("Caller", "string"), ("CallerIpAddress", "string"), ("CorrelationId", "guid"),
               ("ResourceGroup", "string"), ("ResourceProvider", "string"),
               ("SubscriptionId", "guid"), ("DurationMs", "long"), ("Properties", "dynamic"),
               ("Type", "string")]
_OPS = [("Microsoft.Compute/virtualMachines/write", "Microsoft.Compute", "Administrative"),
        ("Microsoft.Storage/storageAccounts/listKeys/action", "Microsoft.Storage",
         "Administrative"),
        ("Microsoft.Resources/deployments/write", "Microsoft.Resources", "Administrative"),
        ("Microsoft.Web/sites/restart/action", "Microsoft.Web", "Administrative"),
        ("Microsoft.Authorization/policies/audit/action", "Microsoft.Authorization", "Policy"),
        ("Microsoft.Insights/AlertRules/Activated/Action", "Microsoft.Insights", "Alert")]
_SUBS = ["6b4c3a2e-1d0f-4e8a-9b7c-5a4d3c2b1a00", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"]
_RGS = ["contoso-prod", "contoso-dev", "fabrikam-web", "monitoring-rg", "aks-nodes"]
_CALLERS = ["alice@contoso.com", "bob@contoso.com", "ops-automation@contoso.com", None]
_EPOCH_2026 = 1767225600  # 2026-01-01T00:00:00Z
_MASK112 = (1 << 112) - 1


def _big_templates():
    """64 row templates: '[' + time + mid + guid + rest, with %d for DurationMs in rest."""
    rng = random.Random(450)
    out = []
    for _ in range(64):
        op, provider, category = rng.choice(_OPS)
        caller, sub, rg = rng.choice(_CALLERS), rng.choice(_SUBS), rng.choice(_RGS)
        level = rng.choices(["Informational", "Warning", "Error"], [85, 10, 5])[0]
        status = rng.choices(["Succeeded", "Started", "Failed"], [70, 20, 10])[0]
        props = json.dumps({"eventCategory": category, "statusCode": "OK",
                            "entity": f"/subscriptions/{sub}/resourceGroups/{rg}/"
                                      f"providers/{provider}/res{rng.randint(1, 40)}"},
                           separators=(",", ":"))
        mid = dumps([op, category, level, status, caller,
                     "" if caller is None else "203.0.113.%d" % rng.randint(1, 254)]).decode()
        rest = dumps([rg, provider, sub]).decode()
        out.append(("," + mid[1:-1] + ',"', '",' + rest[1:-1] + ",%d," +
                    json.dumps(props).replace("%", "%%") + ',"AzureActivity"]'))
    return out


BIG_TEMPLATES = _big_templates()
BIG_HEAD = dumps({"tables": [{"name": "PrimaryResult",
                              "columns": [{"name": n, "type": t} for n, t in BIG_COLUMNS],
                              "rows": []}]})[:-len(b"]}]}")]
BIG_TAIL = b"]}]}"


def big_row(i):
    mid, rest = BIG_TEMPLATES[i % 64]
    t = time.gmtime(_EPOCH_2026 - 1 - i * 7 // 3)
    x = (i * 0x9E3779B97F4A7C15F39CC0605CED + 0x632BE59BD9B4E019D5A8C3B1E257) & _MASK112
    guid = "%08x-%04x-4%03x-8%03x-%012x" % (x >> 80, (x >> 64) & 0xFFFF, (x >> 52) & 0xFFF,
                                            (x >> 40) & 0xFFF, x & 0xFFFFFFFFFFFF)
    return ('["%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"' % (t[0], t[1], t[2], t[3], t[4], t[5],
                                                     i % 1000)
            + mid + guid + rest % ((i * 7919) % 120000))


_BIG_AVG = sum(len(big_row(i)) + 1 for i in range(64 * 8)) / (64 * 8)


def big_rows_for(mb):
    return max(1, int(mb * 1_000_000 / _BIG_AVG))


def send_big(h, mb, gzip_ok):
    rows = big_rows_for(mb)
    extra = [("Transfer-Encoding", "chunked"), ("x-test-rows", str(rows))]
    comp = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip_ok else None
    if comp:
        extra.append(("Content-Encoding", "gzip"))
    _headers(h, 200, extra)
    w = h.wfile

    def chunk(data):
        if comp:
            data = comp.compress(data)
        if data:
            w.write(b"%x\r\n%s\r\n" % (len(data), data))

    chunk(BIG_HEAD)
    batch = 256
    for start in range(0, rows, batch):
        part = ",".join(big_row(i) for i in range(start, min(rows, start + batch)))
        chunk(("," if start else "").encode() + part.encode("ascii"))
    chunk(BIG_TAIL)
    if comp:
        tail = comp.flush()
        if tail:
            w.write(b"%x\r\n%s\r\n" % (len(tail), tail))
    w.write(b"0\r\n\r\n")


# ---------------------------------------------------------------------------
# deep:DEPTH
# ---------------------------------------------------------------------------

def deep_body(depth):
    """Levels alternate: odd levels are arrays '[', even levels objects '{"a":'."""
    pairs, odd = divmod(depth, 2)
    opens = '[{"a":' * pairs + "[" * odd
    closes = "]" * odd + "}]" * pairs
    return (b'{"tables":[{"name":"PrimaryResult","columns":[{"name":"d","type":"dynamic"}],'
            b'"rows":[[' + opens.encode() + b"1" + closes.encode() + b"]]}]}")


# ---------------------------------------------------------------------------
# The FAULTS workspace
# ---------------------------------------------------------------------------

FAULT_NAMES = ("throttle", "throttle_ms", "throttle_date", "flaky", "flaky_reset",
               "reset_mid_body", "truncate_body", "truncate_gzip", "gzip_bad_crc", "gzip_header_crc", "slow_headers", "stall",
               "invalid_json", "wrong_types", "long_overflow", "deep", "big", "html502",
               "bad_chunk", "chunk_cut", "huge_header", "long_length", "short_length", "bad_gzip",
               "bad_status_line", "rows", "sleep")


def gzip_with_header_crc(data):
    """A gzip member (RFC 1952) whose header has FNAME, FCOMMENT and FHCRC set."""
    header = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0x02 | 0x08 | 0x10, 0, 0, 255)
    header += b"query.json\0" + b"written by faults.py\0"
    header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflate.compress(data) + deflate.flush()
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def serve(h, text, gzip_ok):
    """Answers one FAULTS query on handler h (la_server's Handler: send(), wfile, ...)."""
    try:
        _serve(h, text.strip(), gzip_ok)
    except ApiError as err:
        h.send(err.status, err.body(), err.headers)


def _serve(h, text, gzip_ok):
    name, *args = text.split(":")
    name = name.strip()
    args = [a.strip() for a in args]
    success = lambda: h.send(200, SUCCESS_BODY)  # noqa: E731

    if name == "throttle":
        _nargs(name, args, 1)
        raise throttled([("Retry-After", str(_int(args[0], "SECONDS")))])
    if name == "throttle_ms":
        _nargs(name, args, 1)
        raise throttled([("x-ms-retry-after-ms", str(_int(args[0], "MS")))])
    if name == "throttle_date":
        _nargs(name, args, 1)
        when = math.ceil(time.time() + _int(args[0], "SECONDS", hi=10 ** 9))
        raise throttled([("Retry-After", email.utils.formatdate(when, usegmt=True))])
    if name == "flaky":
        _nargs(name, args, 3, 4)
        key, n = args[0], _int(args[1], "N")
        status = _int(args[2], "STATUS", 400, 599)
        if len(args) == 4 and not re.fullmatch(r"[\w.+-]+", args[3]):
            raise bad_fault(f"bad RETRY_AFTER {args[3]!r}")
        if _count(key) <= n:
            raise status_error(status, [("Retry-After", args[3])] if len(args) == 4 else [])
        return success()
    if name == "flaky_reset":
        _nargs(name, args, 2)
        key, n = args[0], _int(args[1], "N")
        if _count(key) <= n:
            return rst(h)
        return success()
    if name == "reset_mid_body":
        _nargs(name, args, 0)
        _headers(h, 200, [("Content-Length", str(len(BIG_BODY)))])
        h.wfile.write(BIG_BODY[:len(BIG_BODY) // 2])
        time.sleep(0.05)  # let the half reach the client before the RST can overtake it
        return rst(h)
    if name == "truncate_body":
        _nargs(name, args, 0)
        return h.send(200, BIG_BODY, compress=False, mode="truncate")
    if name == "truncate_gzip":
        _nargs(name, args, 0)
        return h.send(200, BIG_BODY, mode="gzcut")
    if name == "gzip_bad_crc":
        _nargs(name, args, 0)
        body = bytearray(gzip.compress(BIG_BODY, mtime=0))
        body[-8] ^= 0xff  # the trailer: CRC-32, then the length
        return h.send(200, bytes(body), [("Content-Encoding", "gzip")], compress=False)
    if name == "gzip_header_crc":
        _nargs(name, args, 0)
        return h.send(200, gzip_with_header_crc(BIG_BODY), [("Content-Encoding", "gzip")],
                      compress=False, mode="chunked")
    if name == "slow_headers":
        _nargs(name, args, 1)
        time.sleep(_num(args[0], "SECONDS", 3600))
        return success()
    if name == "stall":
        _nargs(name, args, 1)
        seconds = _num(args[0], "SECONDS", 3600)
        _headers(h, 200, [("Content-Length", str(len(BIG_BODY))), ("x-test-rows", str(BIG_ROWS))])
        h.wfile.write(BIG_BODY[:STALL_PREFIX])
        h.wfile.flush()
        time.sleep(seconds)
        h.wfile.write(BIG_BODY[STALL_PREFIX:])
        return None
    if name == "invalid_json":
        _nargs(name, args, 0)
        return h.send(200, INVALID_JSON)
    if name == "wrong_types":
        _nargs(name, args, 0)
        return h.send(200, WRONG_TYPES)
    if name == "long_overflow":
        _nargs(name, args, 0)
        return h.send(200, LONG_OVERFLOW)
    if name == "deep":
        _nargs(name, args, 1)
        return h.send(200, deep_body(_int(args[0], "DEPTH", 1, MAX_DEPTH)))
    if name == "big":
        _nargs(name, args, 1, 2)
        if len(args) == 2 and args[1] != "identity":
            raise bad_fault(f"big's second argument can only be 'identity', not {args[1]!r}")
        return send_big(h, _num(args[0], "MB", MAX_MB), gzip_ok and len(args) == 1)
    if name == "rows":
        _nargs(name, args, 1, 3)
        n = _int(args[0], "N", 0, generated.MAX_ROWS)
        extra = args[1:]
        identity = "identity" in extra
        seeds = [a for a in extra if a != "identity"]
        if len(seeds) > 1 or (identity and extra.index("identity") != 0):
            raise bad_fault("rows takes rows:N[:identity][:SEED]")
        seed = _int(seeds[0], "SEED", 0, 2 ** 31) if seeds else 0
        return generated.serve_rows(h, n, gzip_ok and not identity, seed)
    if name == "sleep":
        _nargs(name, args, 1)
        time.sleep(_int(args[0], "MS", 0, 3_600_000) / 1000)
        return success()
    if name == "bad_chunk":
        _nargs(name, args, 0)
        _headers(h, 200, [("Transfer-Encoding", "chunked")])
        h.wfile.write(b"zz\r\n" + SUCCESS_BODY + b"\r\n0\r\n\r\n")
        h.close_connection = True
        return None
    if name == "chunk_cut":
        _nargs(name, args, 0)
        _headers(h, 200, [("Transfer-Encoding", "chunked")])
        h.wfile.write(b"%x\r\n" % (len(SUCCESS_BODY) + 100) + SUCCESS_BODY)
        h.close_connection = True
        return None
    if name == "huge_header":
        _nargs(name, args, 1)
        size = _int(args[0], "KB", 1, 10000) * 1024
        _headers(h, 200, [("Content-Length", str(len(SUCCESS_BODY))), ("X-Padding", "a" * size)])
        h.wfile.write(SUCCESS_BODY)
        return None
    if name == "long_length":
        _nargs(name, args, 0)
        _headers(h, 200, [("Content-Length", str(len(SUCCESS_BODY) + 100))])
        h.wfile.write(SUCCESS_BODY)
        h.close_connection = True
        return None
    if name == "short_length":
        _nargs(name, args, 0)
        _headers(h, 200, [("Content-Length", str(len(SUCCESS_BODY) - 10)), ("Connection", "close")])
        h.wfile.write(SUCCESS_BODY)
        h.close_connection = True
        return None
    if name == "bad_gzip":
        _nargs(name, args, 0)
        return h.send(200, b"this is not gzip data at all" * 10, [("Content-Encoding", "gzip")],
                      compress=False)
    if name == "bad_status_line":
        _nargs(name, args, 0)
        h.wfile.write(b"HELLO THERE\r\n\r\n" + SUCCESS_BODY)
        h.close_connection = True
        return None
    if name == "html502":
        _nargs(name, args, 0)
        return h.send(502, HTML502, [("Content-Type", "text/html")], compress=False)
    raise bad_fault(f"Unknown fault '{name}'; known faults: {', '.join(FAULT_NAMES)}",
                    "UnknownApiError")


# ---------------------------------------------------------------------------
# TLS test certificates
# ---------------------------------------------------------------------------

_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
"""


def make_tls_certs(d):
    """Writes into directory d: ca.pem/ca.key (test CA), good.pem/.key (CA-signed, SAN
    IP:127.0.0.1, IP:::1, DNS:localhost), untrusted.pem/.key (self-signed, same SANs),
    wrong_host.pem/.key (CA-signed, SAN DNS:wrong.example only).
    Returns {"ca_file": path, "good": (cert, key), "untrusted": ..., "wrong_host": ...}."""
    p = lambda name: os.path.join(d, name)  # noqa: E731
    cnf = p("openssl.cnf")
    with open(cnf, "w") as f:
        f.write(_OPENSSL_CNF)
    env = dict(os.environ, OPENSSL_CONF=cnf)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    good_sans = "IP:127.0.0.1,IP:::1,DNS:localhost"

    def leaf_ext(name, sans):
        with open(p(name + ".ext"), "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=" + sans + "\n")
        return p(name + ".ext")

    procs = []

    def start(*cmd):
        procs.append((cmd, subprocess.Popen(["openssl", *cmd], env=env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))

    def wait_all():
        for cmd, proc in procs:
            _, err = proc.communicate(timeout=20)
            if proc.returncode:
                raise RuntimeError("openssl %s failed: %s" % (cmd[0], err.decode(errors="replace")))
        procs.clear()

    # Independent key/CSR/certificate generations run side by side.
    start("req", "-x509", *ec, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "2",
          "-subj", "/CN=loganalytics test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    start("req", "-x509", *ec, "-keyout", p("untrusted.key"), "-out", p("untrusted.pem"),
          "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=" + good_sans)
    for name, cn in (("good", "127.0.0.1"), ("wrong_host", "wrong.example")):
        start("req", "-new", *ec, "-keyout", p(name + ".key"), "-out", p(name + ".csr"),
              "-subj", "/CN=" + cn)
    wait_all()
    for name, sans in (("good", good_sans),
                       ("wrong_host", "DNS:wrong.example")):
        start("x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
              "-set_serial", "0x%x" % random.getrandbits(63), "-days", "2",
              "-extfile", leaf_ext(name, sans), "-out", p(name + ".pem"))
    wait_all()
    return {"ca_file": p("ca.pem"),
            **{k: (p(k + ".pem"), p(k + ".key")) for k in ("good", "untrusted", "wrong_host")}}


# ---------------------------------------------------------------------------
# The ECHO workspace: a gateway that quotes the request back (secrets and all)
# ---------------------------------------------------------------------------

ECHO_NAMES = ("html404", "gateway502", "json400", "partial", "text401")


def _quote(h):
    """What a careless server quotes back: the target, then the secret-bearing headers."""
    lines = [f"{h.command} {h.path}"]
    for name in ("Authorization", "X-Api-Key"):
        if h.headers.get(name) is not None:
            lines.append(f"{name}: {h.headers.get(name)}")
    return lines


def echo(h, text):
    """Answers one ECHO query on handler h."""
    name, *args = text.strip().split(":")
    pad = "x" * (_int(args[0], "PAD", 0, 100_000) if args else 0)
    lines = _quote(h)
    quoted = "\n".join(lines)
    if name == "html404":
        page = (f"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>"
                f"<p>{pad}</p><p>The requested URL was not found on this server:</p>"
                f"<pre>{html_lib.escape(quoted)}</pre></body></html>")
        return h.send(404, page.encode("utf-8"), [("Content-Type", "text/html")], compress=False)
    if name == "gateway502":
        page = (f"<html><head><title>502 Bad Gateway</title></head><body><center>"
                f"<h1>502 Bad Gateway</h1></center><p>{pad}</p><p>upstream request: "
                f"{quoted}</p><hr><center>nginx</center></body></html>")
        return h.send(502, page.encode("utf-8"), [("Content-Type", "text/html")], compress=False)
    if name == "text401":
        return h.send(401, f"Unauthorized: {pad}{quoted}".encode("utf-8"),
                      [("Content-Type", "text/plain")], compress=False)
    inner = {"code": lines[-1], "message": "while serving " + lines[0],
             "innererror": {"code": "Echo", "message": quoted}}
    details = [{"code": "Echo", "message": line, "target": line} for line in lines]
    if name == "json400":
        err = {"message": "Bad request: " + quoted, "code": lines[-1],
               "correlationId": lines[-1], "details": details, "innererror": inner}
        return h.send(400, dumps({"error": err}))
    if name == "partial":
        err = {"message": "Partial result: " + quoted, "code": "PartialError",
               "details": details, "innererror": inner}
        body = json.loads(SUCCESS_BODY)
        body["error"] = err
        return h.send(200, dumps(body))
    raise bad_fault(f"Unknown echo '{name}'; known: {', '.join(ECHO_NAMES)}", "UnknownApiError")
