#!/usr/bin/env python3
"""Local stand-in for the Azure Monitor Log Analytics query API (v1), for tests and the demo.

Standard library only; listens on loopback only.

    python3 server/la_server.py [--host 127.0.0.1] [--port 0] [--recorded DIR]
                                [--fixtures DIR] [--token TOKEN ...] [--verbose]
                                [--client-cert CLIENT_ID=PEM_PATH ...] [--tls]
                                [--generated-rows N] [--row-cap N] [--size-cap-bytes BYTES]
                                [--concurrency-limit N] [--retry-after SECONDS]

Once it is listening it prints the port number alone on the first line of stdout, then
serves until SIGTERM/SIGINT, until `POST /_test/shutdown`, or until its parent process
goes away.

Query endpoints (POST, JSON body {"query", "timespan"?, "workspaces"?}; ?api_key= allowed):
  /v1/workspaces/DEMO_WORKSPACE/query   deterministic sample tables + a small KQL subset
                                        (also as demo-workspace's customer id, DEMO_CUSTOMER_ID
                                        in identity.py)
  /v1/subscriptions/.../query           resource-centric; serves the same demo data
  /v1/workspaces/REPLAY/query           query = recorded file name [#N]: replays it
  /v1/workspaces/FIXTURES/query         query = [truncate:|cut:|chunked:|gzcut:]name: raw bytes
                                        of <fixtures>/<name>.json; "large" and "strings" are
                                        generated (large_fixture, strings_fixture)
  /v1/workspaces/FAULTS/query           query = fault[:arg...]: throttling, flaky statuses,
                                        resets, truncation, stalls, bad JSON, huge bodies
                                        (the list is in server/faults.py)
  /v1/workspaces/ECHO/query             query = html404|gateway502|json400|partial|text401:
                                        a gateway quoting the request (URL, Authorization,
                                        X-Api-Key) back, before any auth (server/faults.py)
  /v1/workspaces/GENERATED/query        query = `Events`, `Events | take N` or `Events | count`
                                        on the table of --generated-rows rows (Id,
                                        TimeGenerated, ...) spread over December 2025 (which
                                        ends at ANCHOR, "now"): only the rows in `timespan`
                                        ([start, end), 100 ns exact), streamed, capped by
                                        row_cap / size_cap_bytes (then HTTP 200 with the
                                        service's PartialError); see server/generated.py
  /v1/workspaces/{id}/search            Basic/Auxiliary logs: as /query on the same workspaces
                                        (not ECHO), but `timespan` is required (else 400
                                        BadArgumentError, innererror QueryValidationError)
  /v1/$batch                            {"requests":[{"id","workspace","path":"/query"?,
                                        "method":"POST"?,"body":{"query","timespan"?},
                                        "headers"?}]} (or "path":"/workspaces/{ws}/query");
                                        one auth for all, at most batch_max (10) requests,
                                        ids unique, else 400; answers {"responses":[{"id",
                                        "status","body","headers"?}]} in batch_order (default
                                        reversed), every batch_string_every-th (default 3rd)
                                        request's body as a JSON string (the service's known
                                        quirk). FAULTS inside a batch: only those answering
                                        through send() (BATCH_FAULTS); no REPLAY headers.
Auth: X-Api-Key / ?api_key= / Basic "DEMO_KEY:" or Bearer DEMO_TOKEN (or --token values),
or a bearer token identity.py issued for the query API audience.
The identity provider (token endpoints, IMDS, App Service) and the Resource Manager query path
(/subscriptions/.../workspaces/demo-workspace/api/query) and workspace GET
(/subscriptions/.../workspaces/{name}?api-version=2022-10-01) are in identity.py; their
requests are logged at /_test/requests with the query API's, the token requests at
/_test/identity.
The `timespan` is checked for a plausible ISO 8601 shape, and filters the demo data by
TimeGenerated as the service does. The demo data's clock stands still: "now" is ANCHOR
(2026-01-01T00:00:00Z), so P1D is the day before it, whatever the date.

With --tls it generates (openssl, into a temporary directory removed at exit) a test CA and
three server certificates, and serves the same application over HTTPS on three more loopback
ports: "good" (CA-signed, SAN IP:127.0.0.1, IP:::1, DNS:localhost), "untrusted" (self-signed,
same SANs) and "wrong_host" (CA-signed, SAN DNS:wrong.example only).

Query routes (/query, /search, $batch, the resource-centric and Resource Manager query paths,
and Resource Manager's workspace GET) are counted while they are answered (a streamed answer until its last byte; a $batch as one).
Beyond concurrency_limit at once, or while throttle_next > 0, a request gets 429
ThrottledError with Retry-After: retry_after, before authentication, as a gateway would.

Test control (no auth, not logged): GET /_test/requests, /_test/last, /_test/stats
({"connections", "requests", "in_flight", "max_in_flight", "admitted", "throttled",
"aborted", "workspace_lookups", "pid"}:
workspace_lookups = Resource Manager workspace GETs answered (any status),
in_flight = query-route requests being answered now, max_in_flight = their most at once,
admitted = let in, throttled = refused with 429, aborted = answers cut short because the
client closed the connection (a streamed answer notices at its next write), all since start
or reset; pid = the server's process id, for memory probes),
/_test/faults (the FAULTS per-KEY counters), /_test/tls (with --tls: {"ca_file", "good",
"untrusted", "wrong_host"}, the CA's PEM path and the HTTPS ports; 404 without --tls);
GET /_test/config (the whole configuration below); POST /_test/config with a JSON object:
its keys change those settings, the others stay (400 for an unknown key or a bad value);
answers the whole configuration. Keys (startup value; null means none):
  row_cap (--row-cap, null)           GENERATED: at most this many rows, then PartialError
  size_cap_bytes (--size-cap-bytes)   GENERATED: at most this many bytes of rows JSON
  partial_shape ("details")           "details": the too-large error in error.details[0]
                                      .innererror, as the service sends it; "innererror":
                                      nested as error.innererror.innererror instead
  generated_rows (--generated-rows, 2000000)   size of GENERATED's Events table
  query_delay_ms (0)                           GENERATED: ms each query waits before its answer
  concurrency_limit (--concurrency-limit, null)  query requests at once; more get 429
  retry_after (--retry-after, 1)      seconds, in those 429s' Retry-After header
  throttle_next (0)                   the next N query requests get 429 (counts down)
  batch_order ("reversed")            "reversed", "given" or "shuffled" (deterministic)
  batch_string_every (3)              every Nth $batch answer's body is a JSON string; 0: none
  batch_max (10)                      most requests in one $batch
POST /_test/reset (clears the counters and the request log, the FAULTS counters too, and
restores the configuration's startup values; max_in_flight restarts from in_flight),
/_test/shutdown; GET/POST /_test/identity, POST /_test/revoke (identity.py).
"""

import argparse
import base64
import binascii
import collections
import datetime as dt
import email.message
import fractions
import gzip
import ipaddress
import json
import operator
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote

import faults  # server/faults.py, beside this file
import generated  # server/generated.py, beside this file
import identity  # server/identity.py, beside this file

JSON_CT = faults.JSON_CT
DEMO_KEY = "DEMO_KEY"
DEMO_TOKEN = "DEMO_TOKEN"
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# Recorded response headers that describe the recorded transfer, not the body we send.
HOP_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection", "date"}


dumps = faults.dumps  # compact UTF-8 JSON, shared with faults.py


# ---------------------------------------------------------------------------
# Service-shaped errors
# ---------------------------------------------------------------------------

# ApiError (the service's error shape) is shared with faults.py
ApiError = faults.ApiError


def bad_argument(inner_code, inner_message):
    return ApiError(400, "BadArgumentError", "The request had some invalid properties",
                    {"code": inner_code, "message": inner_message})


def syntax_error(text, token, offset):
    # Same structure as recorded/js-monitor-query_recording_querylogs_bad_query.json,
    # where "pos" is the 0-based character offset of the token within its line.
    line = text.count("\n", 0, offset) + 1
    pos = offset - (text.rfind("\n", 0, offset) + 1)
    return ApiError(400, "BadArgumentError", "The request had some invalid properties", {
        "code": "SyntaxError", "message": "A recognition error occurred in the query.",
        "innererror": {"code": "SYN0002",
                       "message": f"Query could not be parsed at '{token}' on line [{line},{pos}]",
                       "line": line, "pos": pos, "token": token}})


def semantic_error(message, code="SEM0100"):
    # Shape of recorded/js-monitor-query_recording_queryresource_bad_query_with_invalid_table.json
    return ApiError(400, "BadArgumentError", "The request had some invalid properties", {
        "code": "SemanticError", "message": "A semantic error occurred.",
        "innererror": {"code": code, "message": message}})


def not_found_path():
    return ApiError(404, "PathNotFoundError", "The requested path does not exist")


# ---------------------------------------------------------------------------
# Demo data: deterministic tables, built once at startup (takes a few ms)
# ---------------------------------------------------------------------------

ANCHOR = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
SUBSCRIPTIONS = ["6b4c3a2e-1d0f-4e8a-9b7c-5a4d3c2b1a00", "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"]
RESOURCE_GROUPS = ["contoso-prod", "contoso-dev", "fabrikam-web", "monitoring-rg", "aks-nodes"]


def iso_time(seconds_back, frac7=0):
    """ISO 8601 UTC like the service: whole seconds, or up to 7 fractional digits, zeros trimmed."""
    t = ANCHOR - dt.timedelta(seconds=seconds_back)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac7:
        s += ("." + "%07d" % frac7).rstrip("0")
    return s + "Z"


def make_guid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def maybe_frac(rng, share=0.4):
    return rng.randrange(1, 10 ** 7) if rng.random() < share else 0


def build_heartbeat(rng):
    machines = []  # 20 machines: every column but TimeGenerated is fixed per machine
    for i in range(20):
        linux = i % 3 != 0
        machines.append([
            ("lnx-app-%02d" if linux else "WIN-SRV-%02d") % (i + 1),
            rng.choice(["Direct Agent", "Azure Monitor Agent", "SCOM Agent"]),
            "Linux" if linux else "Windows",
            "1.%d.%d" % (rng.randint(10, 29), rng.randint(0, 9)) if linux
            else "10.20.%d.0" % rng.randint(18000, 18100),
            "10.%d.%d.%d" % (rng.randint(0, 3), rng.randint(0, 255), rng.randint(1, 254)),
            rng.choice(["United States", "Netherlands", "Japan", "Ireland"]),
            rng.choice(RESOURCE_GROUPS), make_guid(rng), i == 7,
            "Azure" if i < 15 else "Non-Azure", "Heartbeat"])
    # one heartbeat per machine per minute, 100 minutes back, newest first
    rows = [[iso_time((i // 20) * 60 + (i % 20) * 2 + 1, maybe_frac(rng))] + machines[i % 20]
            for i in range(2000)]
    return schema("TimeGenerated:datetime Computer Category OSType Version ComputerIP "
                  "RemoteIPCountry ResourceGroup SourceComputerId:guid IsGatewayInstalled:bool "
                  "ComputerEnvironment Type"), rows


ACTIVITY_OPS = [  # (OperationName, ResourceProvider, Category)
    ("Microsoft.Compute/virtualMachines/write", "Microsoft.Compute", "Administrative"),
    ("Microsoft.Compute/virtualMachines/start/action", "Microsoft.Compute", "Administrative"),
    ("Microsoft.Storage/storageAccounts/listKeys/action", "Microsoft.Storage", "Administrative"),
    ("Microsoft.Resources/deployments/write", "Microsoft.Resources", "Administrative"),
    ("Microsoft.Network/networkSecurityGroups/write", "Microsoft.Network", "Administrative"),
    ("Microsoft.Web/sites/restart/action", "Microsoft.Web", "Administrative"),
    ("Microsoft.Authorization/policies/audit/action", "Microsoft.Authorization", "Policy"),
    ("Microsoft.Insights/AlertRules/Activated/Action", "Microsoft.Insights", "Alert"),
    ("Microsoft.ResourceHealth/healthevent/Activated/action", "Microsoft.ResourceHealth",
     "ResourceHealth"),
    ("Microsoft.Security/locations/alerts/activate/action", "Microsoft.Security", "Security"),
]
CALLERS = ["alice@contoso.com", "bob@contoso.com", "ops-automation@contoso.com",
           "7d3c1f52-0a6b-4e4d-9f0e-2b9c8a7d6e5f"]


def build_activity(rng):
    rows = []
    for _ in range(3000):
        op, provider, category = rng.choice(ACTIVITY_OPS)
        caller = None if rng.random() < 0.15 else rng.choice(CALLERS)
        sub, rg = rng.choice(SUBSCRIPTIONS), rng.choice(RESOURCE_GROUPS)
        scope = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{provider}/" \
                f"res{rng.randint(1, 40)}"
        props = {"eventCategory": category, "entity": scope, "message": op,
                 "hierarchy": f"{sub}/{rg}",
                 "statusCode": rng.choice(["OK", "Created", "Accepted"])}
        auth = ({"action": op, "scope": scope, "evidence": {"role": "Contributor"}}
                if category == "Administrative" and rng.random() < 0.8 else None)
        level = rng.choices(["Informational", "Warning", "Error", "Critical"], [80, 12, 7, 1])[0]
        rows.append([rng.randint(0, 7 * 86400), maybe_frac(rng, 0.7), op, category, level,
                     rng.choices(["Succeeded", "Started", "Failed"], [70, 20, 10])[0], caller,
                     "" if caller is None else "203.0.113.%d" % rng.randint(1, 254),
                     make_guid(rng), rg, provider, sub,
                     rng.randint(0, 120000) if rng.random() < 0.98
                     else rng.randint(10 ** 9, 10 ** 12),
                     json.dumps(props, separators=(",", ":")),
                     None if auth is None else json.dumps(auth, separators=(",", ":"))])
    rows.sort(key=lambda r: (r[0], -r[1]))  # newest first
    rows = [[iso_time(r[0], r[1])] + r[2:] + ["AzureActivity"] for r in rows]
    return schema("TimeGenerated:datetime OperationName Category Level ActivityStatus Caller "
                  "CallerIpAddress CorrelationId:guid ResourceGroup ResourceProvider "
                  "SubscriptionId:guid DurationMs:long Properties:dynamic Authorization:dynamic "
                  "Type"), rows


USAGE_TYPES = [("Perf", "LogManagement"), ("Heartbeat", "LogManagement"),
               ("AzureActivity", "LogManagement"), ("Syslog", "LogManagement"),
               ("Event", "LogManagement"), ("SecurityEvent", "Security"),
               ("AzureDiagnostics", "LogManagement"), ("ContainerLog", "ContainerInsights"),
               ("InsightsMetrics", "ContainerInsights"), ("W3CIISLog", "LogManagement")]


def build_usage(rng):
    rows = []
    for i in range(1500):  # ten data types per hour, 150 hours back
        hour, (dtype, solution) = i // 10, USAGE_TYPES[i % 10]
        start, end = (hour + 1) * 3600, hour * 3600
        rows.append([iso_time(start - rng.randint(60, 3500), maybe_frac(rng, 0.5)), dtype,
                     solution, round(rng.lognormvariate(0, 1.5), 6), "MBytes",
                     dtype not in ("AzureActivity", "Heartbeat"), iso_time(start), iso_time(end),
                     rng.randint(1, 60), "Usage"])
    return schema("TimeGenerated:datetime DataType Solution Quantity:real QuantityUnit "
                  "IsBillable:bool StartTime:datetime EndTime:datetime BatchesWithinSla:long "
                  "Type"), rows


def schema(spec):
    """'A:datetime B C:long' -> [("A","datetime"),("B","string"),("C","long")]"""
    return [tuple((w + ":string").split(":")[:2]) for w in spec.split()]


def build_tables():
    rng = random.Random(20260101)
    return {"Heartbeat": build_heartbeat(rng), "AzureActivity": build_activity(rng),
            "Usage": build_usage(rng)}


# ---------------------------------------------------------------------------
# Mini KQL: tokenizer, parser (syntax errors), one function per operator
# ---------------------------------------------------------------------------
# source ("|" op)*; source is a table name or `print [name =] literal, ...`; op is one of:
# take/limit N, where C (and C)*, project A[=B], ..., summarize [N=]count() [by A, ...],
# count, order/sort by A [asc|desc], ..., top N by A [asc|desc], render KIND. C is
# `Col OP literal` (== != > < >= <= =~ !~ contains !contains contains_cs startswith
# endswith), `Col in (literal, ...)` / `Col !in (...)`, or isnull/isnotnull/isempty/
# isnotempty(Col). A name is `Name` or bracketed, `['any name']` / `["any name"]`.
# Literals are read as Kusto.Language's lexer (TokenParser.cs) and KustoFacts.
# GetStringLiteralValue read them, so a literal built for the real service means the
# same here: strings '...' "..." with escapes, verbatim @'...' @"..." (a doubled quote
# for a quote), h/H-prefixed (obfuscated: the same value), multi-line ```...``` and
# ~~~...~~~, adjacent string literals spliced into one; numbers (a leading `-`), true/false,
# datetime(...), time(...)/timespan(...), 1.5s-style timespans, long(...), int(...),
# real(...) (nan, +inf, -inf), bool(...), guid(...), dynamic(JSON-like value).

TIMESPAN_UNIT_TICKS = {}
for _names, _ticks in ((("d", "day", "days"), 864000000000),
                       (("h", "hr", "hrs", "hour", "hours"), 36000000000),
                       (("m", "min", "minute", "minutes"), 600000000),
                       (("s", "sec", "second", "seconds"), 10000000),
                       (("ms", "milli", "millis", "millisec", "millisecond", "milliseconds"), 10000),
                       (("micro", "micros", "microsec", "microsecond", "microseconds"), 10),
                       (("nano", "nanos", "nanosec", "nanosecond", "nanoseconds"), 0.01),
                       (("tick", "ticks"), 1)):
    for _name in _names:
        TIMESPAN_UNIT_TICKS[_name] = _ticks
TIMESPAN_UNITS = "|".join(sorted(TIMESPAN_UNIT_TICKS, key=len, reverse=True))
GOO_KEYWORDS = ("datetime", "date", "timespan", "time", "long", "int", "real", "double",
                "bool", "guid")

TOKEN_RE = re.compile(r"""\s*(?:
    (?P<comment>//[^\n]*)
  | (?P<goo>(?:""" + "|".join(GOO_KEYWORDS) + r""")\([^)]*\))
  | (?P<ts>\d+(?:\.\d+)?(?:""" + TIMESPAN_UNITS + r""")(?![A-Za-z0-9_]))
  | (?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<op>==|!=|>=|<=|=~|!~)
  | (?P<id>!?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ch>[<>=(),|\[\]{}:-])
)""", re.X)
CMP = {"==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
       ">=": operator.ge, "<=": operator.le}
STR_OPS = {"=~": lambda v, s: v.lower() == s.lower(), "!~": lambda v, s: v.lower() != s.lower(),
           "contains": lambda v, s: s.lower() in v.lower(),
           "!contains": lambda v, s: s.lower() not in v.lower(),
           "contains_cs": lambda v, s: s in v,
           "startswith": lambda v, s: v.lower().startswith(s.lower()),
           "endswith": lambda v, s: v.lower().endswith(s.lower())}
NULL_FNS = {"isnull": lambda v: v is None, "isnotnull": lambda v: v is not None,
            "isempty": lambda v: v is None or v == "", "isnotempty": lambda v: v not in (None, "")}
NUMERIC = {"int", "long", "real"}
# a string token's `value` is its text (as the service quotes it in a syntax error),
# `decoded` the string it stands for
Tok = collections.namedtuple("Tok", "kind value offset decoded", defaults=(None,))

STRING_QUOTES = "'\""
MULTILINE_FENCES = ("```", "~~~")
SIMPLE_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n",
                  "r": "\r", "t": "\t", "v": "\v"}
HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}
HEX_DIGITS = set("0123456789abcdefABCDEF")


def string_starts(text, pos):
    """Does a string literal start at pos (an h/H or @ prefix, a quote or a fence)?"""
    if text.startswith(("h", "H"), pos):
        pos += 1
        if not text.startswith(("@", "'", '"') + MULTILINE_FENCES, pos):
            return False
    if text.startswith("@", pos):
        pos += 1
    return text.startswith(tuple(STRING_QUOTES) + MULTILINE_FENCES, pos)


def scan_string(text, start):
    """The string literal at start (string_starts is true): (decoded value, end). One
    that does not end on its line (or a bad escape, which ends the scan in Kusto.Language
    too) is the service's syntax error at the literal."""
    def unterminated():
        raise syntax_error(text, text[start:text.find("\n", start) if "\n" in text[start:]
                                      else len(text)], start)
    pos = start + (1 if text[start] in "hH" else 0)
    verbatim = text.startswith("@", pos)
    pos += verbatim
    for fence in MULTILINE_FENCES:  # no escapes, line breaks allowed, ends at the fence
        if text.startswith(fence, pos):
            end = text.find(fence, pos + len(fence))
            if end < 0:
                unterminated()
            return text[pos + len(fence):end], end + len(fence)
    quote, pos, out = text[pos], pos + 1, []
    while True:
        if pos >= len(text) or text[pos] in "\r\n":
            unterminated()
        c = text[pos]
        if c == quote:
            if verbatim and text.startswith(quote, pos + 1):
                out.append(quote)
                pos += 2
                continue
            break
        if c != "\\" or verbatim:
            out.append(c)
            pos += 1
            continue
        e = text[pos + 1:pos + 2]
        if e in SIMPLE_ESCAPES:
            out.append(SIMPLE_ESCAPES[e])
            pos += 2
        elif e in HEX_ESCAPES:
            digits = text[pos + 2:pos + 2 + HEX_ESCAPES[e]]
            if len(digits) != HEX_ESCAPES[e] or not set(digits) <= HEX_DIGITS:
                unterminated()
            code = int(digits, 16)
            if code > 0x10FFFF:
                unterminated()
            out.append(chr(code))
            pos += 2 + len(digits)
        elif e and e in "01234567":  # octal: 1-3 digits, 3 only from \0-\3
            digits = re.match(r"[0-3][0-7]{2}|[0-7]{1,2}", text[pos + 1:pos + 4])[0]
            out.append(chr(int(digits, 8)))
            pos += 1 + len(digits)
        else:
            unterminated()
    value = "".join(out)
    try:  # \uD83D\uDE00: two UTF-16 halves make one character, as in .NET
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:  # a lone half: no string the service could send back
        unterminated()
    return value, pos + 1


def tokenize(text):
    toks, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return toks + [Tok("eof", "<EOF>", pos)]
        if string_starts(text, pos):
            value, end = scan_string(text, pos)
            toks.append(Tok("str", text[pos:end], pos, value))
            pos = end
            continue
        m = TOKEN_RE.match(text, pos)
        if not m:
            raise syntax_error(text, text[pos], pos)
        kind = m.lastgroup
        if kind != "comment":
            toks.append(Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()


DATETIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?Z?")
TIMESPAN_RE = re.compile(r"(-?)(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?")
TIMESPAN_UNIT_RE = re.compile(r"(\d+(?:\.\d+)?)(" + TIMESPAN_UNITS + ")")


def literal_datetime(content):
    """datetime(...)'s content as the service writes a datetime (7 digits at most, zeros
    trimmed, Z), or None when it names no instant."""
    m = DATETIME_RE.fullmatch(content.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    except ValueError:
        return None
    text = "%s-%s-%sT%s:%s:%s" % (y, mo, d, h or "00", mi or "00", s or "00")
    frac = (frac or "").ljust(7, "0").rstrip("0")
    return text + ("." + frac if frac else "") + "Z"


def literal_ticks(content):
    """time(...)'s content ([-][d.]hh:mm[:ss[.fffffff]], days, or 1.5s-style) in 100 ns
    ticks, or None when it is no timespan."""
    content = content.strip()
    m = TIMESPAN_UNIT_RE.fullmatch(content)
    if m:
        return round(fractions.Fraction(m[1]) * fractions.Fraction(TIMESPAN_UNIT_TICKS[m[2]]))
    if re.fullmatch(r"-?\d+", content):
        return int(content) * TIMESPAN_UNIT_TICKS["d"]
    m = TIMESPAN_RE.fullmatch(content)
    if not m:
        return None
    sign, d, h, mi, s, frac = m.groups()
    if int(h) > 23 or int(mi) > 59 or int(s or 0) > 59:
        return None
    ticks = ((int(d or 0) * 24 + int(h)) * 60 + int(mi)) * 60 + int(s or 0)
    ticks = ticks * 10 ** 7 + int((frac or "").ljust(7, "0"))
    return -ticks if sign else ticks


def literal_timespan(ticks):
    """Ticks as the service writes a timespan (.NET's "c" format: [-][d.]hh:mm:ss[.fffffff])."""
    sign, ticks = ("-" if ticks < 0 else ""), abs(ticks)
    seconds, frac = divmod(ticks, 10 ** 7)
    minutes, s = divmod(seconds, 60)
    hours, mi = divmod(minutes, 60)
    d, h = divmod(hours, 24)
    return "%s%s%02d:%02d:%02d%s" % (sign, "%d." % d if d else "", h, mi, s,
                                      ".%07d" % frac if frac else "")


def service_cell(ctype, value):
    """A value as the service writes it in a row: reals' NaN and infinities as strings,
    dynamic values as compact JSON text."""
    if value is None:
        return None
    if ctype == "real" and (value != value or value in (float("inf"), float("-inf"))):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if ctype == "dynamic":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return value


def dt_key(s):
    """Comparable form of a datetime text ('...:00Z' must sort before '...:00.1234567Z')."""
    s = s.strip().rstrip("Zz").replace(" ", "T")
    base, _, frac = s.partition(".")
    base = (base + "T00:00:00"[len(base) - 10:]) if len(base) < 19 else base
    return base + "." + frac.ljust(7, "0")


class Parser:
    """Walks the token list; anything unexpected is the service's SyntaxError at that token."""

    def __init__(self, text):
        self.text, self.toks, self.i = text, tokenize(text), 0

    def peek(self, ahead=0):
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def fail(self, tok=None):
        tok = tok or self.peek()
        raise syntax_error(self.text, tok.value, tok.offset)

    def next(self, kind=None, value=None):
        tok = self.peek()
        if (kind and tok.kind != kind) or (value and (tok.value != value or tok.kind == "str")):
            self.fail(tok)
        self.i += 1
        return tok

    def accept(self, value):
        if self.peek().value == value and self.peek().kind != "str":
            self.i += 1
            return True
        return False

    def bracketed(self):
        """At `['name']` / `["name"]`: True (a name, whatever its characters)."""
        return (self.peek().value == "[" and self.peek().kind == "ch" and
                self.peek(1).kind == "str" and self.peek(2).value == "]")

    def ident(self):
        """A name: Name, or ['any name'] (kind "name": never an operator or keyword)."""
        if self.bracketed():
            open_tok, name = self.next(), self.next()
            self.next()
            return Tok("name", name.decoded, open_tok.offset)
        tok = self.next("id")
        return tok if not tok.value.startswith("!") else self.fail(tok)

    def number(self):
        tok = self.next("num")
        return int(tok.value) if tok.value.isdigit() else self.fail(tok)

    def commalist(self, item):
        out = [item()]
        while self.accept(","):
            out.append(item())
        return out

    def sort_key(self):  # KQL sorts descending unless told otherwise
        col = self.ident()
        return col, self.next().value if self.peek().value in ("asc", "desc") else "desc"

    def literal(self):
        """(type, value) of the literal here; datetimes and timespans as the service writes
        them, dynamic values as Python's JSON values."""
        tok = self.next()
        if tok.kind == "str":
            parts = [tok.decoded]
            while self.peek().kind == "str":  # "a" 'b': one literal, "ab"
                parts.append(self.next().decoded)
            return "string", "".join(parts)
        sign = 1
        if tok.kind == "ch" and tok.value == "-" and self.peek().kind in ("num", "ts"):
            sign, tok = -1, self.next()
        if tok.kind == "num":
            return ("real", sign * float(tok.value)) if re.search("[.eE]", tok.value) \
                else ("long", sign * int(tok.value))
        if tok.kind == "ts":
            return "timespan", literal_timespan(sign * literal_ticks(tok.value))
        if tok.kind == "goo":
            return self.goo(tok)
        if tok.kind == "id" and tok.value in ("true", "false"):
            return "bool", tok.value == "true"
        if tok.kind == "id" and tok.value == "dynamic":
            self.next(value="(")
            value = self.json_value()
            self.next(value=")")
            return "dynamic", value
        self.fail(tok)

    def goo(self, tok):
        """keyword(content): datetime, time/timespan, long/int, real/double, bool, guid."""
        keyword, _, content = tok.value[:-1].partition("(")
        content = content.strip()
        ltype = {"date": "datetime", "time": "timespan", "double": "real"}.get(keyword, keyword)
        if content == "null":
            return ltype, None
        value = None
        if ltype == "datetime":
            value = literal_datetime(content)
        elif ltype == "timespan":
            ticks = literal_ticks(content)
            value = None if ticks is None else literal_timespan(ticks)
        elif ltype in ("long", "int") and re.fullmatch(r"[-+]?\d+", content):
            value = int(content)
            bits = 63 if ltype == "long" else 31
            value = value if -2 ** bits <= value < 2 ** bits else None
        elif ltype == "real":
            special = {"nan": "nan", "+inf": "inf", "inf": "inf", "-inf": "-inf"}
            if content.lower() in special:
                value = float(special[content.lower()])
            elif re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", content):
                value = float(content)
        elif ltype == "bool" and content in ("true", "false"):
            value = content == "true"
        elif ltype == "guid" and re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}",
                                              content):
            value = content.lower()
        if value is None:
            self.fail(tok)
        return ltype, value

    def json_value(self):
        """dynamic(...)'s value, read from KQL tokens as Kusto.Language's ParseJsonValue does:
        string literals (any KQL form), numbers, true/false/null, [...], {"key": ...}."""
        tok = self.peek()
        if self.accept("["):
            if self.accept("]"):
                return []
            items = self.commalist(self.json_value)
            self.next(value="]")
            return items
        if self.accept("{"):
            obj = {}
            if not self.accept("}"):
                while True:
                    key = self.next("str").decoded
                    self.next(value=":")
                    obj[key] = self.json_value()
                    if not self.accept(","):
                        break
                self.next(value="}")
            return obj
        if tok.kind == "id" and tok.value == "null":
            self.next()
            return None
        ltype, value = self.literal()
        if ltype == "string" or ltype in NUMERIC or ltype == "bool":
            if ltype == "real" and (value != value or value in (float("inf"), float("-inf"))):
                self.fail(tok)  # no JSON for them
            return value
        self.fail(tok)

    def in_list(self):
        self.next(value="(")
        values = self.commalist(self.literal)
        self.next(value=")")
        return values

    def condition(self):
        first = self.ident()
        if first.kind == "id" and first.value in NULL_FNS and self.accept("("):
            col = self.ident()
            self.next(value=")")
            return "fn", first.value, col
        tok = self.next()
        if tok.kind == "id" and tok.value in ("in", "!in"):
            return "in", first, tok.value == "!in", self.in_list()
        return ("cmp", first, tok.value, self.literal()) \
            if tok.kind in ("op", "ch") and (tok.value in CMP or tok.value in STR_OPS) or \
            tok.kind == "id" and tok.value in STR_OPS else self.fail(tok)


def column(cols, tok, opname):
    for i, (name, typ) in enumerate(cols):
        if name == tok.value:
            return i, typ
    raise semantic_error(f"'{opname}' operator: Failed to resolve scalar expression named "
                         f"'{tok.value}'")


def make_predicate(cols, cond):
    if cond[0] == "fn":
        i, _ = column(cols, cond[2], "where")
        fn = NULL_FNS[cond[1]]
        return lambda r: fn(r[i])
    if cond[0] == "in":
        _, coltok, negate, literals = cond
        i, typ = column(cols, coltok, "where")
        key = dt_key if typ == "datetime" else (lambda v: v)
        wanted = {key(v) for _, v in literals if v is not None}
        return lambda r: r[i] is not None and (key(r[i]) in wanted) != negate
    _, coltok, op, (ltype, lval) = cond
    i, typ = column(cols, coltok, "where")
    if lval is None:  # a typed null equals nothing
        return lambda r: False
    if op in STR_OPS:
        if ltype != "string":
            raise semantic_error(f"'{op}' operator expects a string argument", "SEM0002")
        fn = STR_OPS[op]
        return lambda r: r[i] is not None and fn(str(r[i]), lval)
    if not ((typ in NUMERIC and ltype in NUMERIC) or typ == ltype or
            (ltype == "string" and typ in ("datetime", "guid", "timespan", "dynamic"))):
        # KQL's wording; the SEM code is a guess
        raise semantic_error(f"Cannot compare values of types {typ} and {ltype}. "
                             "Try adding explicit casts", "SEM0002")
    fn = CMP[op]
    if typ == "datetime":
        key = dt_key(lval)
        return lambda r: r[i] is not None and fn(dt_key(r[i]), key)
    return lambda r: r[i] is not None and fn(r[i], lval)


def sort_rows(cols, rows, keys, opname):
    rows = list(rows)
    for tok, direction in reversed(keys):  # stable sorts, last key first
        i, typ = column(cols, tok, opname)
        conv = dt_key if typ == "datetime" else (lambda v: v)
        # nulls first ascending, last descending (KQL's default)
        rows.sort(key=lambda r: (False, 0) if r[i] is None else (True, conv(r[i])),
                  reverse=direction == "desc")
    return rows


# One function per operator: it parses the operator's arguments (syntax errors now) and
# returns a step (cols, rows) -> (cols, rows) run after the whole query parsed
# (semantic errors then), as the service reports syntax before semantics.

def kql_take(p, ctx):
    n = p.number()
    return lambda cols, rows: (cols, rows[:n])


def kql_where(p, ctx):
    conds = [p.condition()]
    while p.accept("and"):
        conds.append(p.condition())

    def step(cols, rows):
        preds = [make_predicate(cols, c) for c in conds]
        return cols, [r for r in rows if all(f(r) for f in preds)]
    return step


def kql_project(p, ctx):
    def item():
        new = p.ident()
        return new.value, p.ident() if p.accept("=") else new
    items = p.commalist(item)

    def step(cols, rows):
        idx = [column(cols, src, "project") for _, src in items]
        return ([(new, typ) for (new, _), (_, typ) in zip(items, idx)],
                [[r[i] for i, _ in idx] for r in rows])
    return step


def kql_summarize(p, ctx):
    alias = "count_"
    if p.peek(1).value == "=":
        alias = p.ident().value
        p.next()
    for v in ("count", "(", ")"):
        p.next(value=v)
    by = p.commalist(p.ident) if p.accept("by") else []

    def step(cols, rows):
        idx = [column(cols, tok, "summarize") for tok in by]
        counts = {} if by else {(): 0}
        for r in rows:  # dicts keep insertion order: groups come out first-seen first
            key = tuple(r[i] for i, _ in idx)
            counts[key] = counts.get(key, 0) + 1
        return ([(tok.value, typ) for tok, (_, typ) in zip(by, idx)] + [(alias, "long")],
                [list(k) + [n] for k, n in counts.items()])
    return step


def kql_count(p, ctx):
    return lambda cols, rows: ([("Count", "long")], [[len(rows)]])


def kql_order(p, ctx, opname="order"):
    p.next(value="by")
    keys = p.commalist(p.sort_key)
    ctx["sorted"] = True
    return lambda cols, rows: (cols, sort_rows(cols, rows, keys, opname))


def kql_top(p, ctx):
    n = p.number()
    p.next(value="by")
    key = p.sort_key()
    ctx["sorted"] = True
    return lambda cols, rows: (cols, sort_rows(cols, rows, [key], "top")[:n])


def kql_render(p, ctx):
    ctx["visualization"] = p.ident().value
    return lambda cols, rows: (cols, rows)


KQL_OPERATORS = {"take": kql_take, "limit": kql_take, "where": kql_where, "project": kql_project,
                 "summarize": kql_summarize, "count": kql_count, "order": kql_order,
                 "sort": lambda p, ctx: kql_order(p, ctx, "sort"), "top": kql_top,
                 "render": kql_render}


def kql_print(p):
    """`print [name =] literal, ...`: one row (print_0, print_1, ... for unnamed columns)."""
    cols, row = [], []

    def item():
        name = "print_%d" % len(cols)
        if (p.bracketed() or p.peek().kind == "id") and p.peek(3 if p.bracketed() else 1).value == "=":
            name = p.ident().value
            p.next(value="=")
        ltype, value = p.literal()
        cols.append((name, ltype))
        row.append(service_cell(ltype, value))
    p.commalist(item)
    return cols, [row]


def run_kql(text, tables):
    """Returns (columns, rows, ctx) or raises the service's ApiError."""
    p, ctx = Parser(text), {"sorted": False, "visualization": "table"}
    printed = kql_print(p) if p.accept("print") else None
    source, steps = (None if printed else p.ident()), []
    while p.accept("|"):
        tok = p.next("id")
        if tok.value not in KQL_OPERATORS:
            p.fail(tok)
        steps.append((tok.value, KQL_OPERATORS[tok.value](p, ctx)))
    if p.peek().kind != "eof":
        p.fail()
    if not printed and source.value not in tables:
        where = f"'{steps[0][0]}' operator: " if steps else ""
        raise semantic_error(f"{where}Failed to resolve table or column expression named "
                             f"'{source.value}'")
    cols, rows = printed or tables[source.value]
    for _, step in steps:
        cols, rows = step(cols, rows)
    return cols, rows, ctx


# ---------------------------------------------------------------------------
# Request validation helpers
# ---------------------------------------------------------------------------

DURATION_RE = re.compile(r"^-?P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?"
                         r"(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
INSTANT_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"
                        r"(Z|[+-]\d{2}:?\d{2})?$")


def timespan_ok(ts):
    parts = ts.split("/")
    if len(parts) > 2 or any(not (DURATION_RE.match(p) or INSTANT_RE.match(p)) for p in parts):
        return False
    return len(parts) == 1 or not all(DURATION_RE.match(p) for p in parts)


DURATION_PARTS_RE = re.compile(r"^(-?)P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
                               r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def duration(text):
    """An ISO 8601 duration as a timedelta (a year is 365 days, a month 30: the demo's needs)."""
    sign, y, mo, w, d, h, mi, sec = DURATION_PARTS_RE.match(text).groups()
    span = dt.timedelta(days=365 * int(y or 0) + 30 * int(mo or 0) + 7 * int(w or 0) + int(d or 0),
                        hours=int(h or 0), minutes=int(mi or 0), seconds=float(sec or 0))
    return -span if sign else span


def instant(text):
    """An ISO 8601 date or date-time (UTC unless it has an offset) as an aware datetime."""
    s = text.replace(" ", "T").replace("z", "Z")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    m = re.match(r"^(.*[T\d])([+-]\d{2}):?(\d{2})$", s)
    if m and "T" in s:
        s = "%s%s:%s" % m.groups()
    base, dot, rest = s.partition(".")
    if dot:  # Python reads at most 6 fractional digits
        digits = re.match(r"\d*", rest).group(0)
        s = base + "." + digits[:6].ljust(6, "0") + rest[len(digits):]
    t = dt.datetime.fromisoformat(s)
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def timespan_bounds(ts):
    """[start, end) of a timespan (a duration back from ANCHOR, or an interval)."""
    parts = ts.split("/")
    if len(parts) == 1:
        span = abs(duration(parts[0]))
        return ANCHOR - span, ANCHOR
    first, second = parts
    if DURATION_RE.match(first):
        end = instant(second)
        return end - abs(duration(first)), end
    start = instant(first)
    if DURATION_RE.match(second):
        return start, start + abs(duration(second))
    return start, instant(second)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
MICROSECOND = dt.timedelta(microseconds=1)


def instant_ticks(text):
    """An instant in 100 ns ticks since the Unix epoch, its 7th fractional digit kept."""
    ticks = (instant(text) - EPOCH) // MICROSECOND * 10
    frac = re.search(r"\.(\d+)", text)
    return ticks + (int(frac.group(1)[6]) if frac and len(frac.group(1)) > 6 else 0)


def timespan_ticks(ts):
    """timespan_bounds in 100 ns ticks since the Unix epoch: [start, end)."""
    parts = ts.split("/")
    span = lambda p: abs(duration(p)) // MICROSECOND * 10  # noqa: E731
    if len(parts) == 1:
        end = (ANCHOR - EPOCH) // MICROSECOND * 10
        return end - span(parts[0]), end
    first, second = parts
    if DURATION_RE.match(first):
        end = instant_ticks(second)
        return end - span(first), end
    start = instant_ticks(first)
    if DURATION_RE.match(second):
        return start, start + span(second)
    return start, instant_ticks(second)


def within_timespan(tables, ts):
    """The tables with only the rows whose TimeGenerated falls in the timespan."""
    if ts is None:
        return tables
    start, end = timespan_bounds(ts)
    low, high = (dt_key(t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f"))
                 for t in (start, end))
    kept = {}
    for name, (cols, rows) in tables.items():
        at = [n for n, _ in cols].index("TimeGenerated")
        kept[name] = (cols, [r for r in rows if low <= dt_key(r[at]) < high])
    return kept


def parse_prefer(value):
    prefs = {}
    for item in (value or "").split(","):
        k, _, v = item.strip().partition("=")
        if k:
            prefs[k.strip().lower()] = v.strip()
    return prefs


_LARGE = []


def large_fixture():
    """FIXTURES "large": 20,000 rows of every cell kind (about 2.4 MB, 0.5 MB
    gzipped), so a body outgrows the client's inline decoding and goes
    through its worker thread."""
    if not _LARGE:
        rng = random.Random(20261128)
        cols = [{"name": n, "type": t} for n, t in (
            ("TimeGenerated", "datetime"), ("Level", "string"), ("Id", "guid"),
            ("Count", "long"), ("Ratio", "real"), ("Ok", "bool"), ("Detail", "dynamic"),
            ("Note", "string"))]
        rows = []
        for i in range(20000):
            rows.append([
                "2026-11-%02dT%02d:%02d:%02d.%07dZ" % (1 + i % 28, i % 24, i % 60, (i * 7) % 60,
                                                      rng.randrange(10 ** 7)),
                rng.choice(["Informational", "Warning", "Error"]),
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                rng.choice([i, -i, 2 ** 63 - 1 - i, None]),
                rng.choice([i / 7, None, "NaN", 1e300]),
                rng.choice([True, False, None]),
                json.dumps({"row": i, "tag": "caf\u00e9 \"%d\"\n" % i}),
                None if i % 5 == 0 else "row %d, line one\nline two" % i])
        _LARGE.append(dumps({"tables": [{"name": "PrimaryResult", "columns": cols,
                                         "rows": rows}]}))
    return _LARGE[0]


_STRINGS = []


def strings_fixture():
    """FIXTURES "strings": what the client's string cache (64 slots per column, the first
    64 columns, strings up to 256 bytes, slots reset per table) meets, for shape =
    "columns": 64 distinct values cycling, 200 (more than a column's slots), unique
    values, nulls between repeats, long repeats, repeated datetimes and dynamic values
    (made by Lua with a datetime function, dynamic = "decode"); a second table of 70 columns (past the
    cached ones) whose first columns repeat other strings than the first table's; an
    empty table."""
    if not _STRINGS:
        rows = []
        for i in range(1200):
            rows.append([
                i, "few-%d" % (i % 3), "sixty-four-%02d" % (i % 64), "two-hundred-%03d" % (i * 7 % 200),
                "unique-%d" % i, None if i % 7 == 0 else "nulls-%d" % (i % 5),
                ("long-%d-" % (i % 4)) + "x" * 300, "" if i % 2 else "caf\u00e9 \"%d\"" % (i % 9),
                "2026-11-%02dT00:00:00Z" % (1 + i % 3) if i % 4 else "2026-11-0%dT12:30:45.1234567Z" % (1 + i % 2),
                '{"k":%d,"v":[1,null,"x"]}' % (i % 3) if i % 5 else None])
        first = {"name": "Repeats", "columns": [{"name": n, "type": t} for n, t in (
            ("Id", "long"), ("Few", "string"), ("SixtyFour", "string"), ("TwoHundred", "string"),
            ("Unique", "string"), ("WithNulls", "string"), ("Long", "string"), ("Mixed", "string"),
            ("When", "datetime"), ("Bag", "dynamic"))],
                 "rows": rows}
        wide = {"name": "Wide", "columns": [{"name": "C%d" % j, "type": "string"} for j in range(70)],
                "rows": [["w%d-%d" % (j, (i + j) % 5) for j in range(70)] for i in range(530)]}
        empty = {"name": "Empty", "columns": [{"name": "A", "type": "string"}], "rows": []}
        _STRINGS.append(dumps({"tables": [first, wide, empty]}))
    return _STRINGS[0]


def wants_gzip(accept_encoding):
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        if name.strip().lower() == "gzip":
            m = re.search(r"q\s*=\s*([0-9.]+)", params)
            return not m or float(m.group(1)) > 0
    return False


# ---------------------------------------------------------------------------
# Shared server state (request log and counters for the tests)
# ---------------------------------------------------------------------------

class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.log = collections.deque(maxlen=200)
        self.connections = 0   # since start or reset
        self.requests = 0
        self.conn_seq = 0      # never reset, so connection ids stay unique
        self.in_flight = 0     # query-route requests being answered now
        self.max_in_flight = 0  # their most at once since start or reset
        self.admitted = 0      # query-route requests let in (not refused with 429)
        self.throttled = 0     # refused by concurrency_limit or throttle_next
        self.aborted = 0       # answers cut because the client closed the connection
        self.workspace_lookups = 0  # Resource Manager workspace GETs (any answer)


# The test configuration (POST /_test/config): key -> (default, check). The CLI flags set
# the startup values; POST /_test/reset restores those.
def _count_or_none(v):
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)


def _count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


CONFIG_KEYS = {
    "row_cap": _count_or_none,            # GENERATED: rows per answer, then PartialError
    "size_cap_bytes": _count_or_none,     # GENERATED: bytes of rows JSON per answer
    "partial_shape": lambda v: v in ("details", "innererror"),
    "generated_rows": lambda v: _count(v) and v <= generated.MAX_ROWS,
    "concurrency_limit": _count_or_none,  # query requests at once; more get 429
    "retry_after": _count,                # seconds, in those 429s' Retry-After
    "throttle_next": _count,              # the next N query requests get 429 (counts down)
    "batch_order": lambda v: v in ("reversed", "given", "shuffled"),
    "batch_string_every": _count,         # every Nth $batch answer's body as a JSON string
    "batch_max": lambda v: _count(v) and v >= 1,
    "query_delay_ms": _count,             # GENERATED: the service's own time per query
}
TEST_CONFIG = {}
STARTUP_CONFIG = {}


STATE = State()
CONFIG = argparse.Namespace()
TABLES = {}


# ---------------------------------------------------------------------------
# HTTP handler
# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive
    disable_nagle_algorithm = True     # chunked mode writes many tiny pieces

    def setup(self):
        super().setup()
        with STATE.lock:
            STATE.connections += 1
            STATE.conn_seq += 1
            self.conn_id = STATE.conn_seq

    def log_message(self, fmt, *args):
        if CONFIG.verbose:
            super().log_message(fmt, *args)

    def do_any(self):
        self.dispatch(self.command)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_any

    # -- plumbing ----------------------------------------------------------

    def read_body(self):
        # Always read the whole body, even to answer an error, so keep-alive stays in sync.
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status, body, headers=(), compress=True, mode=""):
        """mode "": normal; "truncate": full Content-Length, half the body, close;
        "cut": no length, half the body, close (EOF mid-JSON); "chunked": 7-byte chunks;
        "gzcut": a gzip stream cut in half, sent whole as far as HTTP can tell."""
        hdrs = list(headers)
        names = {k.lower() for k, _ in hdrs}
        for name, value in (("Content-Type", JSON_CT), ("x-ms-request-id", str(uuid.uuid4())),
                            ("Vary", "Accept-Encoding")):
            if name.lower() not in names:
                hdrs.append((name, value))
        if compress and mode in ("", "chunked") and body and \
                wants_gzip(self.headers.get("Accept-Encoding")):
            body = gzip.compress(body, mtime=0)
            hdrs.append(("Content-Encoding", "gzip"))
        if mode == "gzcut":
            body = gzip.compress(body, mtime=0)
            body = body[:len(body) // 2]
            hdrs.append(("Content-Encoding", "gzip"))
            mode = ""
        if mode == "chunked":
            hdrs.append(("Transfer-Encoding", "chunked"))
        elif mode == "cut":
            hdrs.append(("Connection", "close"))
        else:
            hdrs.append(("Content-Length", str(len(body))))
        self.send_response(status)
        for k, v in hdrs:
            self.send_header(k, v)
        self.end_headers()
        if mode == "chunked":
            for i in range(0, len(body), 7):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]))
            self.wfile.write(b"0\r\n\r\n")
        elif mode:
            self.wfile.write(body[:len(body) // 2])
            self.close_connection = True
        else:
            self.wfile.write(body)

    def send_error_api(self, err, extra=()):
        self.send(err.status, err.body(), err.headers + list(extra))

    # -- routing -----------------------------------------------------------

    def dispatch(self, method):
        try:
            body = self.read_body()
        except ValueError:  # unreadable Content-Length: answer, then drop the connection
            self.close_connection = True
            return self.send_error_api(ApiError(400, "BadArgumentError", "Bad Content-Length"))
        path, _, qs = self.path.partition("?")
        if path.startswith("/_test/"):
            return self.control(method, path, body)
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        reply = identity.handle(method, self.path, headers, body)
        if reply is not None:
            return self.send(*reply)
        with STATE.lock:
            STATE.requests += 1
            STATE.log.append({"method": method, "path": self.path, "headers": headers,
                              "body": body.decode("utf-8", "replace"), "connection": self.conn_id,
                              "received": time.time()})
        prefs = parse_prefer(self.headers.get("Prefer"))
        applied = []
        if re.fullmatch(r"\d+", prefs.get("wait", "")):
            applied.append("wait=" + prefs["wait"])
        refusal = self.enter()
        if refusal:
            return self.send_error_api(refusal)
        try:
            self.route(method, path, parse_qs(qs, keep_blank_values=True), body, prefs, applied)
        except ApiError as err:
            self.send_error_api(err, [("Preference-Applied", ",".join(applied))] if applied else [])
        except ConnectionError:   # the client went away mid-answer
            with STATE.lock:
                STATE.aborted += 1
            raise
        finally:
            with STATE.lock:
                STATE.in_flight -= 1

    def enter(self):
        """Counts a query-route request in flight, or returns the 429 refusing it
        (concurrency_limit reached, or throttle_next left)."""
        with STATE.lock:
            limit = TEST_CONFIG["concurrency_limit"]
            if TEST_CONFIG["throttle_next"] > 0 or (limit is not None and
                                                     STATE.in_flight >= limit):
                if TEST_CONFIG["throttle_next"] > 0:
                    TEST_CONFIG["throttle_next"] -= 1
                STATE.throttled += 1
                return faults.throttled([("Retry-After", str(TEST_CONFIG["retry_after"]))])
            STATE.in_flight += 1
            STATE.admitted += 1
            STATE.max_in_flight = max(STATE.max_in_flight, STATE.in_flight)
        return None

    def route(self, method, path, params, body, prefs, applied):
        arm = identity.ARM_WORKSPACE_RE.fullmatch(path)
        if arm:  # Resource Manager's workspace GET (a name to its customer id)
            with STATE.lock:
                STATE.workspace_lookups += 1
            return self.send(*identity.arm_workspace(method, arm, params,
                                                     self.headers.get("Authorization")))
        arm = identity.ARM_QUERY_RE.fullmatch(path)
        if arm:  # Resource Manager: its own auth and errors, then the demo data
            reply = identity.arm_check(method, arm, params, self.headers.get("Authorization"))
            return self.send(*reply) if reply else self.demo(self.query_request(body), prefs,
                                                             applied)
        m = re.fullmatch(r"/v1/workspaces/([^/]+)/(query|search)", path)
        search = False
        if m:
            workspace, search = unquote(m.group(1)), m.group(2) == "search"
            workspace = WORKSPACE_ALIASES.get(workspace, workspace)
        elif path.startswith("/v1/subscriptions/") and path.endswith("/query"):
            workspace = "DEMO_WORKSPACE"   # resource-centric queries see the demo data
        elif path != "/v1/$batch":
            raise not_found_path()
        if method != "POST":
            raise ApiError(405, "MethodNotAllowedError",
                           f"The requested method {method} is not allowed on this path",
                           headers=[("Allow", "POST")])
        if path == "/v1/$batch":
            self.authenticate(params)
            return self.batch(body)
        if workspace == "ECHO" and not search:  # a gateway in front of the service: no auth
            return faults.echo(self, self.query_request(body)["query"])
        self.authenticate(params)
        check_workspace(workspace)
        req = self.query_request(body)
        if search and req.get("timespan") is None:
            # Basic and Auxiliary logs answer only for a time range
            raise bad_argument("QueryValidationError", "body must contain 'timespan' property")
        serve_workspace(self, workspace, req, prefs, applied)

    def batch(self, body):
        """POST /v1/$batch: each request answered as /query would, collected; the answers
        in TEST_CONFIG["batch_order"], every batch_string_every-th body as a JSON string."""
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            req = None
        # wording as recorded/go-azquery_TestQueryBatch_BasicQueryFailure.json
        if not isinstance(req, dict) or not isinstance(req.get("requests"), list):
            raise bad_argument("QueryValidationError", "body must contain 'requests' property")
        subs = req["requests"]
        with STATE.lock:
            cfg = dict(TEST_CONFIG)
        if len(subs) > cfg["batch_max"]:   # the service's limit; the wording is ours
            raise bad_argument("QueryValidationError", f"A batch may hold at most "
                               f"{cfg['batch_max']} requests, not {len(subs)}")
        ids = [s.get("id") if isinstance(s, dict) else None for s in subs]
        if not all(isinstance(i, str) and i for i in ids) or len(set(ids)) != len(ids):
            raise bad_argument("QueryValidationError",
                               "each request must have an 'id', unique in the batch")
        answers = []
        for n, sub in enumerate(subs):
            answer = batch_answer(sub)
            every = cfg["batch_string_every"]
            if every and n % every == every - 1 and isinstance(answer.get("body"), dict):
                answer["body"] = json.dumps(answer["body"], separators=(",", ":"),
                                            ensure_ascii=False)   # the known quirk
            answers.append(answer)
        if cfg["batch_order"] == "reversed":
            answers.reverse()
        elif cfg["batch_order"] == "shuffled":
            random.Random(len(answers)).shuffle(answers)
        self.send(200, dumps({"responses": answers}))

    def authenticate(self, params):
        """Any valid credential admits; presented-but-wrong ones give 403, none gives 401."""
        keys = [self.headers.get("X-Api-Key")] + params.get("api_key", [])
        keys = [k for k in keys if k is not None]
        tokens = []
        scheme, _, cred = (self.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() == "basic":
            try:  # user name is the key; the password is ignored
                keys.append(base64.b64decode(cred.strip(), validate=True)
                            .decode("utf-8").partition(":")[0])
            except (binascii.Error, UnicodeDecodeError):
                keys.append("")
        elif scheme.lower() == "bearer":
            tokens.append(cred.strip())
        if DEMO_KEY in keys or any(t in CONFIG.tokens for t in tokens):
            return
        issued = [identity.check_token(t, identity.QUERY) for t in tokens]
        if any(status == "ok" for status, _ in issued):
            return
        for status, detail in issued:
            if status != "unknown":  # one we issued: expired, revoked or for another audience
                message = {"expired": "The access token has expired.",
                           "revoked": "The access token has been revoked.",
                           "audience": f"The access token was issued for '{detail}', not for "
                                       "this API."}[status]
                raise ApiError(401, "InvalidAuthenticationToken", message, headers=[(
                    "WWW-Authenticate", 'Bearer authorization_uri="https://login.microsoftonline'
                    '.com/common/oauth2/authorize", error="invalid_token", error_description="'
                    + message + '"')])
        if tokens:
            # Body as documented on learn.microsoft.com "Azure Monitor Log Analytics API errors".
            raise ApiError(403, "InvalidAuthenticationToken", "The access token is invalid.")
        if keys:
            # The live api.loganalytics.io answers keys it does not accept with code
            # "UnsupportedKeyError" (MicrosoftDocs/azure-docs#104814); the message text and
            # the 403 status are our choice, the report shows only the code.
            raise ApiError(403, "UnsupportedKeyError", "The provided API key is not valid")
        raise ApiError(401, "AuthorizationRequiredError", "Valid authentication was not provided",
                       headers=[("WWW-Authenticate",
                                 'Bearer authorization_uri="https://login.microsoftonline.com/'
                                 'common/oauth2/authorize", error="invalid_token"')])

    def query_request(self, body):
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            req = None
        if not isinstance(req, dict):
            raise bad_argument("QueryValidationError", "body must be a valid JSON object")
        if not isinstance(req.get("query"), str) or not req["query"].strip():
            raise bad_argument("QueryValidationError", "body must contain 'query' property")
        ts = req.get("timespan")
        if ts is not None and (not isinstance(ts, str) or not timespan_ok(ts)):
            raise bad_argument("QueryValidationError",
                               f"'timespan' is not a valid ISO 8601 duration or interval: {ts!r}")
        ws = req.get("workspaces")
        if ws is not None and (not isinstance(ws, list) or
                               not all(isinstance(w, str) for w in ws)):
            raise bad_argument("QueryValidationError", "'workspaces' must be an array of strings")
        return req

    # -- the three workspaces ----------------------------------------------

    def demo(self, req, prefs, applied):
        cols, rows, ctx = run_kql(req["query"], within_timespan(TABLES, req.get("timespan")))
        table = {"name": "PrimaryResult",
                 "columns": [{"name": n, "type": t} for n, t in cols], "rows": rows}
        result = {"tables": [table]}
        if prefs.get("include-statistics", "").lower() == "true":
            result["statistics"] = {"query": {
                "executionTime": 0.0123,
                "resourceUsage": {"cache": {"memory": {"hits": 1, "misses": 0, "total": 1}}},
                "datasetStatistics": [{"tableRowCount": len(rows),
                                       "tableSize": len(dumps(rows))}]}}
            applied.append("include-statistics=true")
        if prefs.get("include-render", "").lower() == "true":
            # keys as in recorded/js-monitor-query_recording_includerenderincludevisualization
            result["render"] = {
                "visualization": ctx["visualization"], "title": None, "accumulate": False,
                "isQuerySorted": ctx["sorted"], "kind": None, "legend": None, "series": None,
                "yMin": "NaN", "yMax": "NaN", "xAxis": None, "xColumn": None, "xTitle": None,
                "yAxis": None, "yColumns": None, "ySplit": None, "yTitle": None,
                "anomalyColumns": None}
            applied.append("include-render=true")
        extra = [("Preference-Applied", ",".join(applied))] if applied else []
        self.send(200, dumps(result), extra)

    def replay(self, text):
        name, _, index = text.strip().partition("#")
        if not NAME_RE.match(name) or (index and not index.isdigit()):
            raise not_found_path()
        path = Path(CONFIG.recorded) / (name if name.endswith(".json") else name + ".json")
        if not path.is_file():
            raise not_found_path()
        entries = json.loads(path.read_text(encoding="utf-8")).get("Entries") or []
        if not entries:
            raise not_found_path()
        picked = [e for e in entries if "/query" in e.get("RequestUri", "")
                  or "$batch" in e.get("RequestUri", "")]
        entry = (picked or entries)[-1]
        status, payload = entry.get("StatusCode", 200), entry.get("ResponseBody")
        headers = []
        for k, v in (entry.get("ResponseHeaders") or {}).items():
            if k.lower() not in HOP_HEADERS:
                headers += [(k, x) for x in v] if isinstance(v, list) else [(k, v)]
        if isinstance(payload, dict) and isinstance(payload.get("responses"), list):
            n = int(index or 0)
            if n >= len(payload["responses"]):
                raise not_found_path()
            sub = payload["responses"][n]
            status, payload = sub.get("status", 200), sub.get("body")
            headers += [(k, str(v)) for k, v in (sub.get("headers") or {}).items()
                        if k.lower() not in HOP_HEADERS]
        body = b"" if payload is None else \
            payload.encode("utf-8") if isinstance(payload, str) else dumps(payload)
        self.send(status, body, headers)

    def fixture(self, text, extra):
        mode, _, name = text.strip().rpartition(":")
        if mode not in ("", "truncate", "cut", "chunked", "gzcut") or not NAME_RE.match(name):
            raise bad_argument("QueryValidationError", f"bad fixture name: {text!r}")
        if name.endswith(".json"):
            name = name[:-5]
        if name == "large":
            return self.send(200, large_fixture(), list(extra), mode=mode)
        if name == "strings":
            return self.send(200, strings_fixture(), list(extra), mode=mode)
        path = Path(CONFIG.fixtures) / (name + ".json")
        if not path.is_file():
            raise ApiError(404, "PathNotFoundError", f"No fixture named '{name}'")
        raw, status, headers = path.read_bytes(), 200, list(extra)
        # Optional leading directives: "#status 429" and "#header Name: value" lines.
        while raw.startswith(b"#status ") or raw.startswith(b"#header "):
            line, _, raw = raw.partition(b"\n")
            word, _, arg = line.decode("utf-8").strip().partition(" ")
            if word == "#status":
                status = int(arg)
            else:
                k, _, v = arg.partition(":")
                headers.append((k.strip(), v.strip()))
        self.send(status, raw, headers, mode=mode)

    # -- test control --------------------------------------------------------

    def control(self, method, path, body=b""):
        reply = identity.control(method, path, body)
        if reply is not None:
            return self.send(*reply, compress=False)
        if path == "/_test/config" and method in ("GET", "POST"):
            try:
                return self.send(200, dumps(configure(body if method == "POST" else None)),
                                 compress=False)
            except ApiError as err:
                return self.send(err.status, err.body(), compress=False)
        routes = {("GET", "/_test/requests"), ("GET", "/_test/last"), ("GET", "/_test/stats"),
                  ("GET", "/_test/faults"), ("POST", "/_test/reset"), ("POST", "/_test/shutdown"),
                  ("GET", "/_test/config")}
        if TLS_INFO:
            routes.add(("GET", "/_test/tls"))
        if (method, path) not in routes:
            known = any(p == path for _, p in routes)
            err = ApiError(405, "MethodNotAllowedError", "Method not allowed") if known \
                else not_found_path()
            return self.send(err.status, err.body(), compress=False)
        with STATE.lock:
            out = {"/_test/requests": lambda: list(STATE.log),
                   "/_test/last": lambda: STATE.log[-1] if STATE.log else None,
                   "/_test/stats": lambda: {"connections": STATE.connections,
                                            "requests": STATE.requests,
                                            "in_flight": STATE.in_flight,
                                            "max_in_flight": STATE.max_in_flight,
                                            "admitted": STATE.admitted,
                                            "throttled": STATE.throttled,
                                            "aborted": STATE.aborted,
                                            "workspace_lookups": STATE.workspace_lookups,
                                            "pid": os.getpid()},
                   "/_test/faults": faults.counters,
                   "/_test/tls": lambda: dict(TLS_INFO),
                   }.get(path, lambda: {"ok": True})()
            if path == "/_test/reset":
                STATE.log.clear()
                STATE.connections = STATE.requests = 0
                STATE.admitted = STATE.throttled = STATE.aborted = 0
                STATE.workspace_lookups = 0
                STATE.max_in_flight = STATE.in_flight  # those still running count on
                TEST_CONFIG.clear()
                TEST_CONFIG.update(STARTUP_CONFIG)
                identity.reset()
                faults.reset()
        if path != "/_test/shutdown":
            return self.send(200, dumps(out), compress=False)
        self.send(200, dumps(out), [("Connection", "close")], compress=False)
        try:
            self.connection.shutdown(socket.SHUT_WR)  # the answer leaves before we exit
        except OSError:
            pass
        exit_now()


KNOWN_WORKSPACES = ("DEMO_WORKSPACE", "REPLAY", "FIXTURES", "FAULTS", "GENERATED")
# customer ids (as Resource Manager's workspace GET gives them) -> the workspace served
WORKSPACE_ALIASES = {identity.DEMO_CUSTOMER_ID: "DEMO_WORKSPACE"}
# FAULTS that answer through send() alone, so they can answer inside $batch
BATCH_FAULTS = {"throttle", "throttle_ms", "throttle_date", "flaky", "sleep", "invalid_json",
                "wrong_types", "long_overflow", "deep", "html502"}


def check_workspace(workspace):
    if workspace not in KNOWN_WORKSPACES:
        raise ApiError(404, "WorkspaceNotFoundError", "The workspace could not be found",
                       {"code": "WorkspaceNotFoundError",
                        "message": f"Workspace '{workspace}' could not be found"})


def serve_workspace(h, workspace, req, prefs, applied):
    """Answers a validated query for workspace on h: the Handler, or a BatchCapture (which
    has send() and headers, all these answers use)."""
    if workspace == "REPLAY":  # recorded headers go out as recorded, nothing added
        return Handler.replay(h, req["query"])
    gzip_ok = wants_gzip(h.headers.get("Accept-Encoding"))
    if workspace == "FAULTS":
        return faults.serve(h, req["query"], gzip_ok)
    if workspace == "GENERATED":
        ts = req.get("timespan")
        with STATE.lock:
            cfg = dict(TEST_CONFIG)
        if cfg["query_delay_ms"]:
            time.sleep(cfg["query_delay_ms"] / 1000)  # the service runs the query meanwhile
        return generated.answer(h, req["query"], timespan_ticks(ts) if ts else None,
                                cfg["generated_rows"], cfg, gzip_ok)
    extra = [("Preference-Applied", ",".join(applied))] if applied else []
    if workspace == "FIXTURES":
        return Handler.fixture(h, req["query"], extra)
    Handler.demo(h, req, prefs, applied)


class BatchCapture:
    """Stands in for the Handler while one $batch request is answered: keeps what send()
    was given instead of writing it."""
    capture = True

    def __init__(self, headers):
        self.headers = email.message.Message()
        for k, v in headers.items():
            self.headers[str(k)] = str(v)
        self.status, self.body, self.sent_headers = 500, b"", []

    def send(self, status, body, headers=(), compress=True, mode=""):
        self.status, self.body, self.sent_headers = status, body, list(headers)


def batch_answer(sub):
    """One $batch answer {"id", "status", "body", "headers"?} for request sub."""
    out = {"id": sub["id"]}
    headers = sub.get("headers") if isinstance(sub.get("headers"), dict) else {}
    h = BatchCapture(headers)
    try:
        path = sub.get("path", "/query")
        m = re.fullmatch(r"/workspaces/([^/]+)/query", path) if isinstance(path, str) else None
        if path == "/query" and isinstance(sub.get("workspace"), str):
            workspace = sub["workspace"]
        elif m:
            workspace = unquote(m.group(1))
        else:
            raise not_found_path()
        if sub.get("method", "POST") != "POST":
            raise ApiError(405, "MethodNotAllowedError", "Method not allowed")
        workspace = WORKSPACE_ALIASES.get(workspace, workspace)
        check_workspace(workspace)
        req = Handler.query_request(h, dumps(sub.get("body")))
        if workspace == "FAULTS" and req["query"].split(":")[0].strip() not in BATCH_FAULTS:
            raise faults.bad_fault("this fault cannot answer inside $batch")
        prefs = parse_prefer(h.headers.get("Prefer"))
        serve_workspace(h, workspace, req, prefs, [])
    except ApiError as err:
        h.send(err.status, err.body(), err.headers)
    out["status"] = h.status
    try:
        out["body"] = json.loads(h.body.decode("utf-8")) if h.body else None
    except (UnicodeDecodeError, ValueError):
        out["body"] = h.body.decode("utf-8", "replace")
    kept = {k: v for k, v in h.sent_headers
            if k.lower() in ("retry-after", "x-ms-retry-after-ms", "preference-applied")}
    if kept:
        out["headers"] = kept
    return out


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024   # hundreds of clients connect at once (sleep:MS specs)

    def handle_error(self, request, client_address):
        # Clients hanging up mid-response are normal in tests; stay quiet about them.
        if CONFIG.verbose or not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class TLSServer(Server):
    """The same application over HTTPS; the handshake runs in the request's thread."""

    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.context = context

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def finish_request(self, request, client_address):
        try:
            request.settimeout(10)
            request.do_handshake()
            request.settimeout(None)
        except (OSError, ValueError):  # ssl.SSLError is an OSError: the client refused us
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if CONFIG.verbose or not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError,
                                                                ssl.SSLError)):
            super().handle_error(request, client_address)


TLS_INFO = {}      # /_test/tls answer, filled by start_tls
TLS_DIRS = []      # temporary certificate directories, removed at exit


def configure(body):
    """GET (body None) or POST /_test/config: the POSTed JSON object's keys change those
    settings (null: no cap or limit), the others stay. Answers the whole configuration."""
    with STATE.lock:
        if body is not None:
            try:
                changes = json.loads(body.decode("utf-8") or "{}")
            except (UnicodeDecodeError, ValueError):
                changes = None
            if not isinstance(changes, dict):
                raise bad_argument("InvalidTestConfig", "the body must be a JSON object")
            for k, v in changes.items():
                if k not in CONFIG_KEYS:
                    raise bad_argument("InvalidTestConfig", f"unknown key {k!r}; known: "
                                       + ", ".join(CONFIG_KEYS))
                if not CONFIG_KEYS[k](v):
                    raise bad_argument("InvalidTestConfig", f"bad value for {k}: {v!r}")
            TEST_CONFIG.update(changes)
        return dict(TEST_CONFIG)


def exit_now(code=0):
    for d in TLS_DIRS:
        shutil.rmtree(d, ignore_errors=True)
    os._exit(code)


def start_tls(host):
    """Makes the test certificates and starts the three HTTPS listeners (daemon threads)."""
    d = tempfile.mkdtemp(prefix="la_server_tls.")
    TLS_DIRS.append(d)
    certs = faults.make_tls_certs(d)
    info = {"ca_file": certs["ca_file"]}
    for kind in ("good", "untrusted", "wrong_host"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*certs[kind])
        srv = TLSServer((host, 0), Handler, ctx)
        threading.Thread(target=srv.serve_forever, name="tls-" + kind, daemon=True).start()
        info[kind] = srv.server_address[1]
    TLS_INFO.update(info)


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------

def watch_parent(ppid, watch_pid):
    """Exit when the parent (or the --watch-pid process) goes away."""
    while True:
        time.sleep(0.5)
        if watch_pid:
            try:
                os.kill(watch_pid, 0)
            except ProcessLookupError:
                exit_now()
            except PermissionError:
                pass
        elif os.getppid() != ppid:
            exit_now()


def main(argv=None):
    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description="Local Log Analytics query API for tests/demo")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--recorded", default=str(repo / "spec" / "fixtures" / "recorded"))
    ap.add_argument("--fixtures", default=str(repo / "spec" / "fixtures"))
    ap.add_argument("--token", action="append", default=[],
                    help="extra bearer token to accept (repeatable)")
    ap.add_argument("--client-cert", action="append", default=[], metavar="CLIENT_ID=PEM_PATH",
                    help="certificate of a certificate client of the identity provider "
                         "(repeatable)")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    ap.add_argument("--tls", action="store_true",
                    help="also serve HTTPS on three ports with test certificates (/_test/tls)")
    ap.add_argument("--generated-rows", type=int, default=2_000_000, metavar="N",
                    help="rows of the GENERATED workspace's Events table (default 2,000,000)")
    ap.add_argument("--row-cap", type=int, default=None, metavar="N",
                    help="GENERATED answers at most N rows, then a PartialError (default: none)")
    ap.add_argument("--size-cap-bytes", type=int, default=None, metavar="BYTES",
                    help="GENERATED answers at most BYTES of rows JSON, then a PartialError")
    ap.add_argument("--concurrency-limit", type=int, default=None, metavar="N",
                    help="query requests at once; more get 429 ThrottledError (default: none)")
    ap.add_argument("--retry-after", type=int, default=1, metavar="SECONDS",
                    help="Retry-After of the concurrency limit's 429s (default 1)")
    ap.add_argument("--watch-pid", type=int, default=0,
                    help="exit when this process ends (default: when the parent does)")
    args = ap.parse_args(argv)
    args.tokens = {DEMO_TOKEN, *args.token}
    vars(CONFIG).update(vars(args))
    STARTUP_CONFIG.update(row_cap=args.row_cap, size_cap_bytes=args.size_cap_bytes,
                          partial_shape="details", generated_rows=args.generated_rows,
                          concurrency_limit=args.concurrency_limit, retry_after=args.retry_after,
                          throttle_next=0, batch_order="reversed", batch_string_every=3,
                          batch_max=10, query_delay_ms=0)
    bad = [k for k, v in STARTUP_CONFIG.items() if not CONFIG_KEYS[k](v)]
    if bad:
        sys.exit(f"la_server: bad value for {', '.join(bad)}")
    TEST_CONFIG.update(STARTUP_CONFIG)

    host = args.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        sys.exit(f"la_server: refusing to listen on non-loopback host {host!r}")
    host = host.strip("[]")
    if ":" in host:
        Server.address_family = socket.AF_INET6

    try:
        identity.configure(args.client_cert)
    except (ValueError, OSError, subprocess.SubprocessError) as e:
        sys.exit(f"la_server: {e}")
    ppid = os.getppid()
    TABLES.update(build_tables())
    server = Server((host, args.port), Handler)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: exit_now())
    if args.tls:
        try:
            start_tls(host)
        except (OSError, RuntimeError, ssl.SSLError, subprocess.SubprocessError) as e:
            print(f"la_server: --tls: {e}", file=sys.stderr)
            exit_now(1)
    threading.Thread(target=watch_parent, args=(ppid, args.watch_pid), daemon=True).start()
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        exit_now()


if __name__ == "__main__":
    main()
