#!/usr/bin/env python3
"""Runs the benchmark and prints one table (see bench/README.md). `make bench` runs it.

    python3 bench/run.py [--sizes 10000,100000,500000] [--runs 9] [--runs-large 3]
                         [--large 500000] [--callgrind-rows 100000 | --no-callgrind]
                         [--only full,on_row,cjson,sdk,floor,floor_tls]

From the repository root, after `make build` (and bench/js's `npm ci`). Generates the
data once (bench/data, a cache), starts bench_server.py, runs every contender --runs times
per size (--runs-large at sizes >= --large), interleaved, each in its own process under
/usr/bin/time, and once more under callgrind at --callgrind-rows for contenders 1, 2, 3 and 5.
Every run must return the N rows it asked for and must have been served what was meant
(gzip, the whole body), or it counts as an error: "ERR" in the table and exit status 1.
The on_row contender is "n/a" when the option is refused (not implemented yet).
"""

import argparse
import hashlib
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import json
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import generate  # noqa: E402  (bench/generate.py)

LUA = os.environ.get("LUA", "lua5.4")
# the module's build for that runtime: LA_BENCH_BUILD=build/lua-jit LUA=luajit (make build-jit)
BUILD = os.environ.get("LA_BENCH_BUILD", "build")
LUA_ENV = {"LUA_PATH": "lua/?.lua;lua/?/init.lua;;", "LUA_CPATH": BUILD + "/?.so;;"}
TIMEOUT = 900


class Contender:
    def __init__(self, key, label, argv, scheme="http", env=None, callgrind=False,
                 optional=False, check_bytes=None, offline=False):
        self.key, self.label, self.argv, self.scheme = key, label, argv, scheme
        self.env, self.callgrind, self.optional = env or {}, callgrind, optional
        self.check_bytes = check_bytes  # None | "json" | "gz": what bytes= must equal
        self.offline = offline          # reads the data file itself: no request to check


CONTENDERS = [
    Contender("full", "1 module: query(kql), full result",
              lambda ep, n: [LUA, "bench/contender_full.lua", ep, str(n)], env=LUA_ENV,
              callgrind=True),
    Contender("columns", "1b module: query(kql, {shape=\"columns\"})",
              lambda ep, n: [LUA, "bench/contender_full.lua", ep, str(n), "columns"],
              env=LUA_ENV, callgrind=True),
    Contender("columns_read", "1c 1b + every cell read (:totable())",
              lambda ep, n: [LUA, "bench/contender_full.lua", ep, str(n), "columns_read"],
              env=LUA_ENV),
    Contender("epoch", "1d module: query(kql, {datetime=\"epoch\"})",
              lambda ep, n: [LUA, "bench/contender_full.lua", ep, str(n), "epoch"],
              env=LUA_ENV, optional=True),
    Contender("on_row", "2 module: query(kql, {on_row=f})",
              lambda ep, n: [LUA, "bench/contender_on_row.lua", ep, str(n)], env=LUA_ENV,
              callgrind=True, optional=True),
    Contender("cjson", "3 curl | cjson.decode + Lua pass",
              lambda ep, n: [LUA, "bench/contender_cjson.lua", ep, str(n)], env=LUA_ENV,
              callgrind=True, check_bytes="json"),
    Contender("sdk", "4 Azure SDK for JS (https)",
              lambda ep, n: ["node", "bench/js/contender_sdk.mjs", ep, str(n)], scheme="https"),
    Contender("floor", "5 floor: curl --compressed >/dev/null",
              lambda ep, n: ["sh", "bench/contender_floor.sh", ep, str(n)], check_bytes="gz",
              callgrind=True),
    Contender("floor_tls", "5b floor, over https",
              lambda ep, n: ["sh", "bench/contender_floor.sh", ep, str(n), CERT[0]],
              scheme="https", check_bytes="gz"),
    Contender("decoder", "6 decoder fed from Lua strings, full result",
              lambda ep, n: [LUA, "bench/contender_decoder.lua", DATA[0], str(n), "full"],
              env=LUA_ENV, callgrind=True, check_bytes="gz", offline=True),
    Contender("decoder_take", "6b decoder, take=true batch=500",
              lambda ep, n: [LUA, "bench/contender_decoder.lua", DATA[0], str(n), "take"],
              env=LUA_ENV, callgrind=True, check_bytes="gz", offline=True),
]
CERT = [None]
DATA = [None]   # the data directory (--data)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except Exception:
        return ""


def machine_facts():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cpu = cpu or sh("lscpu | sed -n 's/^Model name: *//p'") or platform.processor()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GB\", $2/1048576}' /proc/meminfo")
    load = "%.2f %.2f %.2f" % os.getloadavg()
    sdk_versions = []
    for pkg in ("@azure/monitor-query-logs", "@azure/identity", "@azure/core-rest-pipeline"):
        try:
            with open(os.path.join(HERE, "js", "node_modules", pkg, "package.json")) as f:
                sdk_versions.append("%s %s" % (pkg, json.load(f)["version"]))
        except (OSError, ValueError, KeyError):
            pass
    module = sh("cd %s && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='%s/?.so;;' "
                "%s -e 'print(require\"loganalytics\"._VERSION)'" % (shlex.quote(ROOT), BUILD, LUA))
    core = os.path.join(ROOT, BUILD, "loganalytics", "core.so")
    try:
        with open(core, "rb") as f:
            core_id = "%s/loganalytics/core.so sha256 %s, built %s" % (BUILD,
                hashlib.sha256(f.read()).hexdigest()[:12],
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(core))))
    except OSError:
        core_id = "%s/loganalytics/core.so missing" % BUILD
    return [
        ("machine", "nproc %s, %s, %s RAM, Linux %s, load %s at start" % (
            os.cpu_count() if not shutil.which("nproc") else sh("nproc"), cpu, mem,
            platform.release(), load)),
        ("lua", "%s, loganalytics %s, lua-cjson %s" % (
            " ".join(sh("%s -v" % LUA).split()[:2]), module or "?",
            sh("dpkg-query -W -f='${Version}' lua-cjson 2>/dev/null") or "?")),
        ("module", core_id),
        ("curl", " ".join(w for i, w in enumerate(sh("curl --version | head -n 1").split())
                           if i < 2 or w.startswith(("libcurl/", "OpenSSL/", "zlib/")))),
        ("node", "%s, %s" % (sh("node --version"), ", ".join(sdk_versions) or "SDK not installed")),
        ("server", "bench/bench_server.py on Python %s (same machine, shares the cores)"
         % platform.python_version()),
    ]


def start_server(data_dir):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "bench_server.py"), "--data", data_dir,
         "--watch-pid", str(os.getpid())],
        stdout=subprocess.PIPE, text=True)
    http_port = proc.stdout.readline().strip()
    https_port = proc.stdout.readline().split()[1]
    cert = proc.stdout.readline().split(None, 1)[1].strip()
    return proc, int(http_port), int(https_port), cert


def last_request(http_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/_bench/last" % http_port, timeout=10) as r:
        return json.load(r)


BENCH_RE = re.compile(r"^BENCH (.*)$", re.M)


def parse_bench(out):
    m = None
    for m in BENCH_RE.finditer(out):
        pass
    if not m:
        return None
    line = m.group(1)
    if line.startswith("status=error"):
        return {"status": "error", "msg": line.split("msg=", 1)[1] if "msg=" in line else line}
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def run_once(c, endpoint, n, sizes, http_port, extra_env, wrapper=None):
    """Runs contender c once; returns (record, error message or None)."""
    env = dict(os.environ)
    env.update(c.env)
    env.update(extra_env)
    tmp = tempfile.NamedTemporaryFile(prefix="la-bench-time-", delete=False)
    tmp.close()
    argv = c.argv(endpoint, n)
    if wrapper:
        argv = wrapper + argv
    elif shutil.which("time") or os.path.exists("/usr/bin/time"):
        argv = ["/usr/bin/time", "-f", "%M", "-o", tmp.name] + argv
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired:
        os.unlink(tmp.name)
        return None, "timed out after %d s" % TIMEOUT
    rss_kb = None
    try:
        with open(tmp.name) as f:
            text = f.read().strip().splitlines()
        rss_kb = int(text[-1]) if text and text[-1].isdigit() else None
    except (OSError, ValueError):
        pass
    os.unlink(tmp.name)
    rec = parse_bench(out)
    if rec is None:
        tail = (err or out).strip().splitlines()[-3:]
        return None, "exit %d, no BENCH line: %s" % (rc, " | ".join(tail) or "no output")
    if rec.get("status") != "ok":
        return None, rec.get("msg", "error")
    if rc != 0 and not wrapper:
        return None, "exit %d: %s" % (rc, err.strip()[-200:])
    json_bytes, gz_bytes = sizes
    seen = {"rows": n, "complete": True, "gzip": True, "scheme": c.scheme} if c.offline \
        else last_request(http_port)
    if seen.get("rows") != n or not seen.get("complete"):
        return None, "the server did not send the whole body: %r" % seen
    if not seen.get("gzip"):
        return None, "the request did not accept gzip (Accept-Encoding: %r)" % seen.get("accept_encoding")
    if seen.get("scheme") != c.scheme:
        return None, "went over %s, not %s" % (seen.get("scheme"), c.scheme)
    if c.check_bytes:
        want = json_bytes if c.check_bytes == "json" else gz_bytes
        if int(rec.get("bytes", -1)) != want:
            return None, "got %s bytes, expected %d" % (rec.get("bytes"), want)
    return {"seconds": float(rec["seconds"]), "rss_kb": rss_kb,
            "lua_kb": int(rec["lua_kb"]) if "lua_kb" in rec else None}, None


def callgrind_ir(c, endpoint, n, sizes, http_port, extra_env):
    d = tempfile.mkdtemp(prefix="la-bench-cg-")
    try:
        wrapper = ["valgrind", "--tool=callgrind", "--trace-children=yes",
                   "--callgrind-out-file=%s/cg.%%p" % d]
        rec, err = run_once(c, endpoint, n, sizes, http_port, extra_env, wrapper)
        if err:
            return None, err
        total = 0
        for name in os.listdir(d):
            with open(os.path.join(d, name)) as f:
                found = None
                for line in f:
                    if line.startswith("totals:") or (found is None and line.startswith("summary:")):
                        found = int(line.split()[1])
                total += found or 0
        return total, None
    finally:
        shutil.rmtree(d, ignore_errors=True)


def fmt_ir(ir):
    return "%.2f G" % (ir / 1e9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,500000")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--runs-large", type=int, default=3)
    ap.add_argument("--large", type=int, default=500000)
    ap.add_argument("--callgrind-rows", type=int, default=100000)
    ap.add_argument("--no-callgrind", action="store_true")
    ap.add_argument("--only", default="")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    only = set(filter(None, args.only.split(",")))
    contenders = [c for c in CONTENDERS if not only or c.key in only]
    started = time.time()

    facts = machine_facts()
    cmd = " ".join(shlex.quote(a) for a in ["python3", "bench/run.py"] + sys.argv[1:])
    if os.environ.get("MAKELEVEL"):
        cmd = "make bench  (" + cmd + ")"

    # what is missing makes a contender n/a rather than the whole run fail
    missing = {}
    if not os.path.exists(os.path.join(ROOT, BUILD, "loganalytics", "core.so")):
        for k in ("full", "columns", "columns_read", "epoch", "on_row", "cjson", "decoder",
                  "decoder_take"):
            missing[k] = "%s/loganalytics/core.so missing: run make build" % BUILD
    if subprocess.run([LUA, "-e", "require'cjson'"], capture_output=True).returncode != 0:
        missing.setdefault("cjson", "lua-cjson not installed")
    if not shutil.which("node") or not os.path.isdir(os.path.join(HERE, "js", "node_modules", "@azure", "monitor-query-logs")):
        missing["sdk"] = "node or bench/js/node_modules missing: cd bench/js && npm ci"
    if args.callgrind_rows not in sizes:
        args.no_callgrind = True
    if not args.no_callgrind and not shutil.which("valgrind"):
        args.no_callgrind = True
        print("valgrind not found: no instruction counts", file=sys.stderr)

    DATA[0] = args.data
    print("generating data (cached in %s) ..." % os.path.relpath(args.data, ROOT), file=sys.stderr)
    data = {}
    for n in sizes:
        t0 = time.time()
        path, size, gz = generate.write(n, args.data)
        data[n] = (size, gz)
        with open(path, "rb") as f1, open(path + ".gz", "rb") as f2:   # into the page cache
            while f1.read(1 << 24):
                pass
            while f2.read(1 << 24):
                pass
        print("  %7d rows: %6.1f MB json, %5.1f MB gzip (%.1f s)" % (
            n, size / 1e6, gz / 1e6, time.time() - t0), file=sys.stderr)

    server, http_port, https_port, cert = start_server(args.data)
    CERT[0] = cert
    endpoints = {"http": "http://127.0.0.1:%d" % http_port,
                 "https": "https://127.0.0.1:%d" % https_port}
    extra_env = {"NODE_EXTRA_CA_CERTS": cert}

    results = {}   # (key, n) -> {"times": [...], "rss": [...], "error": str|None}
    na = {}        # key -> reason (optional contender refused)
    try:
        for n in sizes:
            runs = args.runs_large if n >= args.large else args.runs
            for c in contenders:
                results[(c.key, n)] = {"times": [], "rss": [], "error": missing.get(c.key)}
            for rep in range(runs):
                print("  %7d rows, run %d/%d" % (n, rep + 1, runs), file=sys.stderr)
                for c in contenders:
                    r = results[(c.key, n)]
                    if r["error"] or c.key in na:
                        continue
                    rec, err = run_once(c, endpoints[c.scheme], n, data[n], http_port, extra_env)
                    if err:
                        if c.optional:
                            na[c.key] = err
                        else:
                            r["error"] = err
                            print("    %s: %s" % (c.key, err), file=sys.stderr)
                        continue
                    r["times"].append(rec["seconds"])
                    if rec["rss_kb"] is not None:
                        r["rss"].append(rec["rss_kb"])
                    if rec["lua_kb"] is not None:
                        r.setdefault("lua", []).append(rec["lua_kb"])
        irs = {}
        if not args.no_callgrind:
            n = args.callgrind_rows
            for c in contenders:
                if not c.callgrind or c.key in missing or c.key in na:
                    continue
                print("  callgrind: %s at %d rows ..." % (c.key, n), file=sys.stderr)
                t0 = time.time()
                ir, err = callgrind_ir(c, endpoints[c.scheme], n, data[n], http_port, extra_env)
                if err:
                    if c.optional:
                        na[c.key] = err
                    else:
                        irs[c.key] = "ERR"
                        results.setdefault((c.key, "callgrind"), {})["error"] = err
                        print("    %s: %s" % (c.key, err), file=sys.stderr)
                    continue
                irs[c.key] = ir
                print("    %s Ir (%.0f s)" % (fmt_ir(ir), time.time() - t0), file=sys.stderr)
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()

    # ------------------------------------------------------------------ the table
    head = ["contender", "rows", "median s", "min-max s", "MB/s", "peak RSS MB",
            "Ir @%dk" % (args.callgrind_rows // 1000)]
    table, notes, failed = [], [], False
    for c in contenders:
        for n in sizes:
            r = results[(c.key, n)]
            ir = ""
            if n == args.callgrind_rows and c.callgrind and not args.no_callgrind:
                v = irs.get(c.key)
                ir = fmt_ir(v) if isinstance(v, int) else ("ERR" if v == "ERR" else "n/a")
            if c.key in na:
                table.append([c.label, str(n), "n/a", "", "", "", ir or ""])
                continue
            if r["error"] or not r["times"]:
                failed = failed or c.key not in missing
                table.append([c.label, str(n), "ERR" if c.key not in missing else "n/a",
                              "", "", "", ir])
                continue
            med = statistics.median(r["times"])
            rss = "%.0f" % (statistics.median(r["rss"]) * 1024 / 1e6) if r["rss"] else "?"
            table.append([c.label, str(n), "%.3f" % med,
                          "%.3f-%.3f" % (min(r["times"]), max(r["times"])),
                          "%.0f" % (data[n][0] / med / 1e6), rss, ir])
        if c.key in na:
            notes.append("%s: n/a: %s" % (c.label, na[c.key]))
        for n in sizes:
            e = results[(c.key, n)]["error"]
            if e:
                notes.append("%s at %d rows: %s" % (c.label, n, e))
        cg = results.get((c.key, "callgrind"))
        if cg:
            failed = True
            notes.append("%s under callgrind: %s" % (c.label, cg["error"]))

    widths = [max(len(row[i]) for row in [head] + table) for i in range(len(head))]
    right = [False] + [True] * (len(head) - 1)

    def line(row):
        return "  ".join(cell.rjust(w) if r else cell.ljust(w)
                         for cell, w, r in zip(row, widths, right)).rstrip()

    print()
    print("loganalytics benchmark: %s" % cmd)
    for k, v in facts:
        print("  %-8s %s" % (k + ":", v))
    print("  data:    " + ", ".join("%dk rows %.1f MB json / %.1f MB gzip" % (
        n // 1000, data[n][0] / 1e6, data[n][1] / 1e6) for n in sizes))
    print("  runs:    %d per size (%d at >= %dk rows), interleaved; median of in-process "
          "query times" % (args.runs, args.runs_large, args.large // 1000))
    print()
    print(line(head))
    print(line(["-" * w for w in widths]))
    prev = None
    for row in table:
        if prev is not None and row[0] != prev:
            print()
        prev = row[0]
        print(line(row))
    print()
    print("MB/s = uncompressed JSON bytes / median time (1 MB = 10^6 bytes); peak RSS = "
          "/usr/bin/time %M of the contender's process (median of runs);")
    if args.no_callgrind:
        print("Ir: not measured (--no-callgrind, --callgrind-rows not among --sizes, or no valgrind).")
    else:
        print("Ir = callgrind total instructions of one run at %d rows, whole process incl. "
              "interpreter start-up (3: lua + sh + curl; 5: curl alone)." % args.callgrind_rows)
    print("Lua contenders and the curl floor use http; the JS SDK (bearer auth) needs https, "
          "compare it with 5b. Every run checked: N rows, gzip, whole body.")
    print("6 and 6b make no request: the gzip file is read into a Lua string before the clock "
          "starts, then fed to core.decoder in 64 KiB slices (the cosocket path's decoding cost).")
    # the goals, read off this run's medians
    def med(key, n, field="times"):
        r = results.get((key, n))
        return statistics.median(r[field]) if r and not r["error"] and r.get(field) else None
    for n in sizes:
        full, cjson, sdk = med("full", n), med("cjson", n), med("sdk", n)
        parts = []
        if full and cjson:
            parts.append("%.2fx faster than curl + lua-cjson" % (cjson / full))
        if full and sdk:
            parts.append("%.2fx faster than the JS SDK" % (sdk / full))
        rss, lua = med("full", n, "rss"), med("full", n, "lua")
        if rss and lua:
            parts.append("peak RSS %.0f MB = Lua result %.0f MB + %.0f MB" % (
                rss * 1024 / 1e6, lua * 1024 / 1e6, (rss - lua) * 1024 / 1e6))
        stream = med("on_row", n, "rss")
        if stream:
            parts.append("on_row peak RSS %.0f MB" % (stream * 1024 / 1e6))
        cols, cols_read, cols_rss = med("columns", n), med("columns_read", n), med("columns", n, "rss")
        if full and cols:
            parts.append("shape = \"columns\" %.2fx faster than rows%s" % (
                full / cols, " (%.2fx with every cell read)" % (full / cols_read) if cols_read else ""))
        if rss and cols_rss:
            parts.append("columns peak RSS %.0f MB = %.0f%% of rows'" % (
                cols_rss * 1024 / 1e6, 100.0 * cols_rss / rss))
        epoch = med("epoch", n)
        if full and epoch:
            parts.append("datetime = \"epoch\" %.3f s" % epoch)
        dec, dec_take, on_row = med("decoder", n), med("decoder_take", n), med("on_row", n)
        if full and dec:
            parts.append("decoder fed from Lua strings %.3f s (libcurl path %.3f s)" % (dec, full))
        if dec_take and on_row:
            parts.append("decoder take/batch %.3f s (libcurl on_row %.3f s)" % (dec_take, on_row))
        if parts:
            print("at %dk rows, full result: %s" % (n // 1000, "; ".join(parts)))
    for note in notes:
        print("note: " + note)
    print("(%.0f s in all)" % (time.time() - started))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
