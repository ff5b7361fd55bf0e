"""Latency of ``ganforge serve`` under load, measured from a second process over 127.0.0.1.

    python benchmarks/serve_latency.py runs/dcgan-1min --requests 400 --clients 4 --max-seconds 60

Starts ``python -m ganforge serve SOURCE --port 0`` in a subprocess, then fires
at most ``--requests`` GETs of ``/api/samples?n=16&seed=S`` (for at most
``--max-seconds``) from ``--clients`` threads of this process, each with its
own keep-alive connection. Seeds repeat (``--distinct-seeds``), so the check
that one seed always gets the same bytes is exercised under concurrency.
Reports p50/p95/max latency and requests per second, and fails (exit 1) on any
non-200 answer, any seed whose bytes differ, or a server that is down at the
end.
"""

import argparse
import http.client
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from machine import describe_machine


def start_server(source: str, threads: int | None) -> tuple[subprocess.Popen, str, int]:
    """``ganforge serve`` on 127.0.0.1 and a free port; returns (process, host, port) once it listens."""
    command = [sys.executable, "-m", "ganforge", "serve", source, "--host", "127.0.0.1", "--port", "0"]
    command += ["--threads", str(threads)] if threads else []
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()  # "ganforge: serving RUN at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
    if "http://" not in line:
        server.kill()
        sys.exit(f"the server did not start: {line!r}")
    url = urlsplit(line.split(" at ")[1].split()[0])
    return server, url.hostname, url.port


def get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one GET on a kept-alive connection."""
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    return response.status, body, time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a run directory or checkpoint")
    parser.add_argument("--requests", type=int, default=400, help="most requests in all (default: 400)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads (default: 4)")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop firing after this long (default: 60)")
    parser.add_argument("--n", type=int, default=16, help="images per request (default: 16)")
    parser.add_argument("--distinct-seeds", type=int, default=50, help="seeds the requests cycle through")
    parser.add_argument("--threads", type=int, default=None, help="--threads for the server (default: its own)")
    args = parser.parse_args()

    server, host, port = start_server(args.source, args.threads)
    try:
        warm = http.client.HTTPConnection(host, port, timeout=30)
        status, _, _ = get(warm, "/api/model")
        assert status == 200, f"/api/model answered {status}"
        for _ in range(5):  # first requests pay for lazy setup in the server and the connection
            get(warm, f"/api/samples?n={args.n}&seed=0")

        lock, next_index = threading.Lock(), iter(range(args.requests))
        latencies, failures, first_bytes, mismatched, counts = [], [], {}, set(), {}
        deadline = time.monotonic() + args.max_seconds

        def client() -> None:
            connection = http.client.HTTPConnection(host, port, timeout=30)
            while time.monotonic() < deadline:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                seed = index % args.distinct_seeds
                status, body, seconds = get(connection, f"/api/samples?n={args.n}&seed={seed}")
                with lock:
                    latencies.append(seconds)
                    counts[seed] = counts.get(seed, 0) + 1
                    if status != 200:
                        failures.append((seed, status, body[:200]))
                    elif first_bytes.setdefault(seed, body) != body:
                        mismatched.add(seed)
            connection.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            for future in [pool.submit(client) for _ in range(args.clients)]:
                future.result()
        elapsed = time.perf_counter() - started

        status_after, _, _ = get(http.client.HTTPConnection(host, port, timeout=30), "/api/model")
        alive = server.poll() is None and status_after == 200
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()

    repeated = sum(1 for count in counts.values() if count > 1)
    print(f"machine: {describe_machine()}, Python {platform.python_version()}")
    print(f"requests: {len(latencies)} of n={args.n} from {args.clients} clients in {elapsed:.1f} s")
    print(
        f"latency ms: p50 {1000 * statistics.median(latencies):.1f}, p95 {1000 * percentile(latencies, 0.95):.1f}, "
        f"max {1000 * max(latencies):.1f}; {len(latencies) / elapsed:.1f} requests/s"
    )
    print(
        f"non-200 answers: {len(failures)}; seeds answered with other bytes on a repeat: {len(mismatched)} "
        f"(of {repeated} seeds requested more than once)"
    )
    print(f"server up and answering at the end: {alive}")
    for failure in failures[:5]:
        print(f"  failure: seed {failure[0]}: {failure[1]} {failure[2]!r}")
    return 0 if alive and not failures and not mismatched else 1


if __name__ == "__main__":
    sys.exit(main())
