"""A listener that records every byte it receives (spec/url_guard_spec.lua).

    python3 capture_server.py HOST PORT LOG

Runs only inside the network namespace netns_guard.sh makes, on an address
that exists nowhere else. Each connection is read until the peer is quiet
for 0.5 s (or sends 64 KiB), appended to LOG as one record, then answered
with a bare 500 and closed. Prints "ready" once listening.
"""
import socket
import sys
import threading

host, port, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()


def serve(conn, peer):
    data = b""
    conn.settimeout(0.5)
    try:
        while len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    with lock, open(log_path, "ab") as log:
        log.write(b"--- connection from %s:%d, %d bytes\n" % (peer[0].encode(), peer[1], len(data)))
        log.write(data + b"\n")
    try:
        conn.sendall(b"HTTP/1.1 500 Capture\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    except OSError:
        pass
    conn.close()


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, port))
listener.listen(64)
open(log_path, "ab").close()
print("ready", flush=True)
while True:
    c, addr = listener.accept()
    threading.Thread(target=serve, args=(c, addr), daemon=True).start()
