#!/usr/bin/env python3
"""A one-purpose loopback listener for the token specs (standard library only).

    python3 spec/scripts/listener.py MODE LOG_FILE WATCH_PID

Prints its port on the first line of stdout, then serves on 127.0.0.1 until the
process WATCH_PID goes away. Every request line it receives is appended to LOG_FILE.

MODE:
  proxy    a plain-http forward proxy: absolute-URI requests are forwarded to their
           (loopback) target and the answer relayed; CONNECT is refused with 405
  silent   accepts, reads the request, never answers
  stall    answers a 200 with Content-Length 100, sends one byte of body, then nothing
"""

import http.client
import os
import socket
import sys
import threading
import time
from urllib.parse import urlsplit


def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")


def read_head(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def proxy(conn, head, rest):
    lines = head.split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    if method == "CONNECT":
        conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
        return
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip()] = v.strip()
    length = int(headers.get("Content-Length", headers.get("content-length", "0")) or 0)
    body = rest
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    url = urlsplit(target)
    path = url.path + ("?" + url.query if url.query else "")
    upstream = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
    fwd = {k: v for k, v in headers.items()
           if k.lower() not in ("proxy-connection", "connection", "host")}
    upstream.request(method, path, body=body[:length] or None, headers=fwd)
    answer = upstream.getresponse()
    payload = answer.read()
    out = [f"HTTP/1.1 {answer.status} {answer.reason}"]
    for k, v in answer.getheaders():
        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
            out.append(f"{k}: {v}")
    out.append(f"Content-Length: {len(payload)}")
    out.append("Connection: close")
    conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)


def serve(mode, log_path, conn):
    with conn:
        head, rest = read_head(conn)
        if head is None:
            return
        log(log_path, head.split("\r\n")[0])
        if mode == "proxy":
            proxy(conn, head, rest)
        elif mode == "stall":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{")
            time.sleep(120)
        else:
            time.sleep(120)


def main():
    mode, log_path, watch_pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print(srv.getsockname()[1], flush=True)

    def watch():
        while True:
            time.sleep(0.5)
            try:
                os.kill(watch_pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
    threading.Thread(target=watch, daemon=True).start()
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(mode, log_path, conn), daemon=True).start()


if __name__ == "__main__":
    main()
