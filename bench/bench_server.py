#!/usr/bin/env python3
"""The benchmark's stand-in for the Log Analytics v1 query API (standard library only).

    python3 bench/bench_server.py [--data bench/data] [--watch-pid PID]

Listens on 127.0.0.1 only, on two free ports: plain HTTP and HTTPS (a self-signed
certificate for 127.0.0.1/localhost made with the openssl CLI in a temporary directory,
deleted on exit). Prints, once both listen:

    line 1: the HTTP port
    line 2: https <port>
    line 3: cert <path of the certificate PEM>

POST /v1/workspaces/bench-<N>/query answers with <data>/activity-<N>.json as written by
generate.py: the .gz file's bytes with Content-Encoding: gzip when the request accepts
gzip, else the plain file; always with Content-Length, HTTP/1.1 keep-alive, streamed from
disk in 1 MiB blocks. Any X-Api-Key or Bearer token is accepted (none is refused either).
GET /_bench/last tells what the last query request asked for and was sent (JSON), so the
harness can check each contender got what it was meant to (gzip or not, bytes sent).

Exits on SIGTERM/SIGINT, or when --watch-pid's process (default: the parent) is gone.
"""

import argparse
import json
import os
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BLOCK = 1 << 20
PATH_RE = re.compile(r"^/v1/workspaces/bench-(\d+)/query(?:\?.*)?$")
STATE = {"last": None}
LOCK = threading.Lock()


def accepts_gzip(header):
    for part in (header or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        if fields[0].lower() in ("gzip", "x-gzip", "*"):
            q = 1.0
            for f in fields[1:]:
                if f.lower().startswith("q="):
                    try:
                        q = float(f[2:])
                    except ValueError:
                        q = 0.0
            if q > 0:
                return True
    return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True   # no 40 ms Nagle/delayed-ACK stall between headers and body
    server_version = "bench-loganalytics/1"
    data_dir = "."
    scheme = "http"

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_bench/last":
            with LOCK:
                last = STATE["last"]
            self.send_json(200, last or {})
        else:
            self.send_json(404, {"error": {"code": "PathNotFoundError", "message": self.path}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length) if length else b""
        m = PATH_RE.match(self.path)
        if not m:
            self.send_json(404, {"error": {"code": "PathNotFoundError",
                                           "message": "no such path: " + self.path}})
            return
        n = int(m.group(1))
        plain = os.path.join(self.data_dir, "activity-%d.json" % n)
        gzip_ok = accepts_gzip(self.headers.get("Accept-Encoding"))
        path = plain + ".gz" if gzip_ok else plain
        try:
            f = open(path, "rb")
        except OSError:
            self.send_json(404, {"error": {"code": "WorkspaceNotFoundError",
                                           "message": "no data for bench-%d (run generate.py)" % n}})
            return
        record = {
            "scheme": self.scheme, "path": self.path, "rows": n, "gzip": gzip_ok,
            "accept_encoding": self.headers.get("Accept-Encoding"),
            "user_agent": self.headers.get("User-Agent"),
            "auth": "bearer" if (self.headers.get("Authorization") or "").startswith("Bearer ")
                    else ("api_key" if self.headers.get("X-Api-Key") else None),
            "request_body": request_body.decode("utf-8", "replace")[:200],
            "bytes": 0, "complete": False,
        }
        with LOCK:
            STATE["last"] = record
        with f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            if gzip_ok:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Vary", "Accept-Encoding")
            self.send_header("Content-Length", str(size))
            self.send_header("x-ms-request-id", "bench-%d" % n)
            self.end_headers()
            sent = 0
            while True:
                block = f.read(BLOCK)
                if not block:
                    break
                self.wfile.write(block)
                sent += len(block)
                record["bytes"] = sent
            record["complete"] = sent == size


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class TLSServer(Server):
    context = None

    def get_request(self):
        sock, addr = self.socket.accept()
        # the handshake happens in the handler's thread, on first read
        return self.context.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr


def make_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-addext", "basicConstraints=critical,CA:TRUE"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.path.join(here, "data"))
    ap.add_argument("--watch-pid", type=int, default=os.getppid())
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="la-bench-tls-")

    def stop(*_):
        shutil.rmtree(tmp, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        cert, key = make_cert(tmp)
        Handler.data_dir = os.path.abspath(args.data)
        http = Server(("127.0.0.1", 0), Handler)

        class TLSHandler(Handler):
            scheme = "https"

        https = TLSServer(("127.0.0.1", 0), TLSHandler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        https.context = ctx
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    for srv in (http, https):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(http.server_address[1])
    print("https", https.server_address[1])
    print("cert", cert, flush=True)

    while True:
        time.sleep(0.5)
        try:
            os.kill(args.watch_pid, 0)
        except ProcessLookupError:
            stop()
        except PermissionError:
            pass
        if os.getppid() == 1 and args.watch_pid != 1:
            stop()


if __name__ == "__main__":
    main()
