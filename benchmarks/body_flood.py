"""One client streams a huge chunked body at /v1/stylize; what it gets, how much it pushed first, and
what the flood cost the server's memory.

The server counts a body while it arrives and answers 413 once it passes ``--max-body-mb``; the
hand-written server before it read a 300 MB chunked body whole first (its replica grew by 351 MB,
its proxy by 546 MB, measured by this script against commit 9c62b29). With
``--server-pid`` (the `adainrt serve` process) the resident memory of its Ray Serve replica and proxy
is sampled every 20 ms during the flood::

    adainrt serve --port 8000 &
    python -m adainrt.benchmarks.body_flood http://127.0.0.1:8000 --server-pid $!
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
import urllib.parse
from pathlib import Path

from adainrt.benchmarks.serve_load import check_loopback

#: Ray Serve's process titles of the parts that hold request bodies.
ROLES = {"replica": "ServeReplica", "proxy": "ProxyActor"}


def server_processes(root: int) -> dict[str, int]:
    """The pids of the replica and the proxy below ``root`` (a local Ray started by `adainrt serve`)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    found: dict[str, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            command = (Path("/proc") / str(pid) / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        for role, title in ROLES.items():
            if title in command:
                found.setdefault(role, pid)
        todo += children.get(pid, [])
    return found


def rss_mb(pid: int) -> float:
    for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemorySampler(threading.Thread):
    """The largest resident size of each process, sampled every 20 ms until stopped."""

    def __init__(self, pids: dict[str, int]):
        super().__init__(daemon=True)
        self.pids = pids
        self.before = {role: rss_mb(pid) for role, pid in pids.items()}
        self.peak = dict(self.before)
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.02):
            for role, pid in self.pids.items():
                with contextlib.suppress(OSError):
                    self.peak[role] = max(self.peak[role], rss_mb(pid))

    def report(self) -> dict:
        return {role: {"before_mb": round(self.before[role], 1), "peak_mb": round(self.peak[role], 1),
                       "grew_mb": round(self.peak[role] - self.before[role], 1)} for role in self.pids}


def send_chunked_flood(host: str, port: int, megabytes: int, key: str | None) -> dict:
    """POST ``megabytes`` MB in 64 KB chunks, stopping as soon as the server answers; its status line."""
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b"\0" * (1 << 16))
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    start, sent = time.monotonic(), 0
    outcome: dict = {}
    with socket.create_connection((host, port)) as conn:
        conn.sendall(f"POST /v1/stylize?style=flood HTTP/1.1\r\nHost: x\r\n{auth}"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        conn.setblocking(False)
        try:
            while sent < megabytes << 20:
                try:
                    outcome["answer"] = conn.recv(80).split(b"\r\n")[0].decode("latin-1")
                    break
                except BlockingIOError:
                    pass
                conn.setblocking(True)
                conn.sendall(chunk)
                conn.setblocking(False)
                sent += len(chunk)
            if "answer" not in outcome:
                conn.setblocking(True)
                conn.sendall(b"0\r\n\r\n")
                conn.settimeout(300)
                outcome["answer"] = conn.recv(80).split(b"\r\n")[0].decode("latin-1")
        except OSError as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"
    return outcome | {"pushed_mb": round(sent / (1 << 20), 1), "seconds": round(time.monotonic() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="an adainrt serve on this machine, e.g. http://127.0.0.1:8000")
    parser.add_argument("--megabytes", type=int, default=300)
    parser.add_argument("--api-key")
    parser.add_argument("--server-pid", type=int, help="the `adainrt serve` process: sample its replica's memory")
    args = parser.parse_args()
    check_loopback(args.url)
    parts = urllib.parse.urlsplit(args.url)
    sampler = MemorySampler(server_processes(args.server_pid)) if args.server_pid else None
    if sampler:
        sampler.start()
    result = send_chunked_flood(parts.hostname, parts.port or 80, args.megabytes, args.api_key)
    if sampler:
        time.sleep(1.0)  # what the server does with what it read lands after the answer too
        sampler.halt.set()
        sampler.join()
        result["memory"] = sampler.report()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
