"""One client sends a huge request header; what it gets, and how long /healthz takes for others meanwhile.

Ray Serve's proxy parses headers with uvicorn's httptools parser, which has no size limit, before
any adainrt code sees the request: a 200 MB header holds the proxy. The bound belongs to the
reverse proxy in front (README, "Behind a reverse proxy"); this measures both setups::

    python -m adainrt.benchmarks.header_flood http://127.0.0.1:8000          # adainrt serve alone
    python -m adainrt.benchmarks.header_flood http://127.0.0.1:8080          # behind nginx
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
import urllib.parse
import urllib.request

from adainrt.benchmarks.serve_load import check_loopback


def send_huge_header(host: str, port: int, megabytes: int) -> dict:
    """Send a GET whose one header holds ``megabytes`` MB, then read the first bytes of the answer."""
    start, sent = time.monotonic(), 0
    outcome: dict = {}
    try:
        with socket.create_connection((host, port)) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Huge: ")
            chunk = b"a" * (1 << 20)
            for _ in range(megabytes):
                conn.sendall(chunk)
                sent += 1
            conn.sendall(b"\r\n\r\n")
            outcome["answer"] = conn.recv(80).split(b"\r\n")[0].decode("latin-1")
    except OSError as exc:
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    return outcome | {"sent_mb": sent, "seconds": round(time.monotonic() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the server (or the proxy in front of it), a loopback address")
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--probe-timeout", type=float, default=30.0)
    args = parser.parse_args()
    check_loopback(args.url)
    parsed = urllib.parse.urlsplit(args.url)
    result: dict = {}
    flood = threading.Thread(target=lambda: result.update(send_huge_header(parsed.hostname, parsed.port or 80,
                                                                          args.megabytes)))
    flood.start()
    latencies = []
    while flood.is_alive():
        start = time.monotonic()
        try:
            urllib.request.urlopen(f"{args.url}/healthz", timeout=args.probe_timeout).read()
            latencies.append(time.monotonic() - start)
        except OSError:
            latencies.append(float("inf"))
        time.sleep(0.25)
    flood.join()
    worst = max(latencies, default=0.0)
    print(f"{args.megabytes} MB header: {result}")
    print(f"/healthz meanwhile: {len(latencies)} probes, worst "
          + (f"{worst * 1000:.0f} ms" if worst != float("inf") else f"no answer within {args.probe_timeout:g} s"))


if __name__ == "__main__":
    main()
