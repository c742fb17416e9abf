"""A bounded load test of the sample service on loopback: `make loadtest`.

Starts the service on a free loopback port, then runs rounds of concurrent clients, each sending a
fixed number of requests (a new connection per request, as the service speaks HTTP/1.0), and prints
the latency percentiles per round. It never sends traffic anywhere but 127.0.0.1, and every round is
bounded in requests and in time.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from service import server  # noqa: E402

LOOPBACK = "127.0.0.1"
MAX_CLIENTS = 256
MAX_REQUESTS = 1000
DEADLINE_SECONDS = 60


def measure(port: int, clients: int, requests_per_client: int, path: str = "/health") -> dict:
    """Latencies of `clients` concurrent clients on LOOPBACK:`port`, each sending its requests in turn."""
    if not (1 <= clients <= MAX_CLIENTS and 1 <= requests_per_client <= MAX_REQUESTS):
        raise ValueError(f"clients must be 1..{MAX_CLIENTS} and requests 1..{MAX_REQUESTS}")
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + DEADLINE_SECONDS
    start = threading.Barrier(clients)

    def client() -> None:
        start.wait()
        for _ in range(requests_per_client):
            if time.monotonic() > deadline:
                with lock:
                    errors.append("deadline")
                return
            began = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                connection.close()
                ok = response.status == 200
            except OSError as err:
                ok = False
                with lock:
                    errors.append(type(err).__name__)
            elapsed = time.perf_counter() - began
            with lock:
                if ok:
                    latencies.append(elapsed)
                elif not errors or errors[-1] != "deadline":
                    errors.append("status")

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_SECONDS + 10)
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")

    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "p50": pct(50),
        "p99": pct(99),
        "max": ordered[-1] if ordered else float("nan"),
        "mean": statistics.fmean(ordered) if ordered else float("nan"),
    }


def run_server(backlog: int | None = None) -> server.Server:
    httpd = server.serve(port=0)
    if backlog is not None:
        # For comparison only: rebind with another backlog.
        httpd.socket.listen(backlog)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="4,32", help="comma-separated concurrency levels")
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--backlog", type=int, help="listen backlog to compare with (the service's: 1024)")
    args = parser.parse_args(argv)
    httpd = run_server(args.backlog)
    port = httpd.server_address[1]
    backlog = args.backlog or server.Server.request_queue_size
    print(f"service on {LOOPBACK}:{port}, listen backlog {backlog}, {httpd.workers} worker threads")
    try:
        for clients in (int(c) for c in args.clients.split(",")):
            r = measure(port, clients, args.requests)
            print(
                f"{r['clients']:4d} clients x {args.requests} requests: p50 {r['p50'] * 1000:7.1f} ms  "
                f"p99 {r['p99'] * 1000:7.1f} ms  max {r['max'] * 1000:7.1f} ms  errors {r['errors']}"
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
