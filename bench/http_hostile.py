"""The daemon's HTTP server under hostile connections: /healthz and /metrics latency, server RSS.

A child process serves ``aiops.server.DaemonServer`` (with the real Alertmanager webhook handler)
on a loopback port. The parent opens N hostile connections, in three equal parts:

- idle: connect, send nothing;
- slowloris: send a request line and then one header byte per second;
- unauthenticated bodies: a webhook POST without a token announcing and sending a 1 MiB body;

then, while they are open, times 20 GETs of /healthz and of /metrics (5 s client timeout; a
timeout counts as 5 s) and reads the child's RSS. Loopback only, bounded in count and time.

    python bench/http_hostile.py --connections 1000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = 1 << 20
CLIENT_TIMEOUT = 5.0


def serve(state: str) -> None:
    from pydantic import SecretStr

    from aiops.notify.inbound import AlertInbox
    from aiops.notify.webhook import make_handler
    from aiops.server import DaemonServer
    from aiops.state import Store

    hook = make_handler(AlertInbox(Store(state)), SecretStr("bench-token"), BODY)
    server = DaemonServer("127.0.0.1", 0, ready=lambda: (True, "ok"), webhook=hook).start()
    print(server.port, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


def status(pid: int, field: str) -> float:
    """A field of /proc/PID/status: VmRSS and VmHWM (peak RSS) in MB, Threads as a count."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            value = int(line.split()[1])
            return value / 1024 if field.startswith("Vm") else value
    return float("nan")


def get(port: int, path: str) -> float:
    t0 = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                return CLIENT_TIMEOUT
    except OSError:
        return CLIENT_TIMEOUT
    return time.perf_counter() - t0


def ms(xs: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(xs) * 1000, 1), "max_ms": round(max(xs) * 1000, 1),
            "timeouts": sum(x >= CLIENT_TIMEOUT for x in xs)}


def still_open(s: socket.socket) -> bool:
    """True when the server has not closed it (an answer it sent before closing is read past)."""
    for _ in range(64):  # bounded: answers are small
        try:
            if s.recv(65536) == b"":
                return False
        except BlockingIOError:
            return True
        except OSError:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=12.0, help="seconds to keep the hostile connections before timing")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.connections + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(Path(tmp) / "s.sqlite")],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ)
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        time.sleep(0.5)
        rss_before = status(child.pid, "VmRSS")
        baseline = [get(port, "/healthz") for _ in range(10)]
        socks: list[socket.socket] = []
        third = args.connections // 3
        t0 = time.monotonic()
        for i in range(args.connections):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue
            s.setblocking(False)
            try:
                if third <= i < 2 * third:
                    s.send(b"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\n")
                elif i >= 2 * third:
                    s.send(f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           f"Content-Length: {BODY}\r\n\r\n".encode())
                    s.settimeout(0.5)  # the whole body if the server reads it, else what the socket takes
                    try:
                        s.sendall(b"x" * BODY)
                    finally:
                        s.setblocking(False)
            except OSError:
                pass
            socks.append(s)
        opened = time.monotonic() - t0
        threads = status(child.pid, "Threads")
        deadline = time.monotonic() + args.hold
        while time.monotonic() < deadline:  # slowloris: one header byte a second
            for s in socks[third:2 * third]:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            time.sleep(1.0)
        healthz = [get(port, "/healthz") for _ in range(20)]
        metrics = [get(port, "/metrics") for _ in range(20)]
        rss_during, rss_peak = status(child.pid, "VmRSS"), status(child.pid, "VmHWM")
        alive = sum(still_open(s) for s in socks)
        for s in socks:
            s.close()
        child.stdin.close()
        child.wait(timeout=30)
    print(json.dumps({
        "connections": args.connections, "opened_s": round(opened, 2), "hold_s": args.hold,
        "healthz_idle": ms(baseline), "healthz": ms(healthz), "metrics": ms(metrics),
        "rss_mb_before": round(rss_before, 1), "rss_mb_during": round(rss_during, 1),
        "rss_mb_peak": round(rss_peak, 1), "server_threads_after_opening": threads,
        "hostile_still_open_at_end": alive,
    }))


if __name__ == "__main__":
    main()
