"""A small JSON HTTP service: /health for the load balancer and /api/greeting as the real endpoint.

Logs are one JSON object per line on stdout (CloudWatch Logs via awslogs). The X-Ray trace header
set by the ALB is passed through to the response and every log line, so a request can be followed
from the load balancer to the logs and the traces.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from . import tracing

TRACE_HEADER = "X-Amzn-Trace-Id"
NAME_RE = re.compile(r"^[\w .'-]{1,64}$")
SERVICE = os.environ.get("SERVICE_NAME", "web")
VERSION = os.environ.get("APP_VERSION", "dev")
SAMPLING_RATE = float(os.environ.get("XRAY_SAMPLING_RATE", "0.05"))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": SERVICE,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, separators=(",", ":"))


class _Stdout:
    """Whatever sys.stdout is at the time of writing (so a test's capture sees the logs)."""

    def write(self, text: str) -> None:
        sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def make_logger() -> logging.Logger:
    logger = logging.getLogger("service")
    if not logger.handlers:
        handler = logging.StreamHandler(_Stdout())
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(os.environ.get("LOG_LEVEL", "info").upper())
    logger.propagate = False
    return logger


LOG = make_logger()


def greeting(query: str) -> tuple[int, dict]:
    """The real endpoint: greet a name given as ?name=…"""
    name = (parse_qs(query).get("name") or ["world"])[0]
    if not NAME_RE.match(name):
        return 400, {"error": "name must be 1 to 64 letters, digits, spaces or .'-"}
    return 200, {"greeting": f"Hello, {name}!", "version": VERSION}


class Handler(BaseHTTPRequestHandler):
    server_version = "web"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        started = time.perf_counter()
        wall_start = tracing.now()
        url = urlparse(self.path)
        if url.path == "/health":
            status, body = 200, {"status": "ok"}
        elif url.path == "/api/greeting":
            status, body = greeting(url.query)
        else:
            status, body = 404, {"error": "not found"}
        payload = json.dumps(body).encode()
        trace = self.headers.get(TRACE_HEADER)
        # Recorded before the response goes out, so a client that has its answer finds it logged.
        fields = tracing.parse_header(trace)
        if fields and url.path != "/health" and tracing.should_sample(fields, SAMPLING_RATE):
            tracing.send(tracing.segment(SERVICE, fields, wall_start, tracing.now(), "GET", url.path, status))
        if url.path != "/health" or status != 200:
            LOG.info(
                "request",
                extra={
                    "fields": {
                        "method": "GET",
                        "path": url.path,
                        "status": status,
                        "trace": trace,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                },
            )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if trace:
            self.send_header(TRACE_HEADER, trace)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - silence the default stderr log
        return


class Server(ThreadingHTTPServer):
    """A thread per request, at most `WORKER_THREADS` at once, and a listen backlog sized for a load
    balancer. The standard library's backlog of 5 drops the SYNs of a burst of new connections, and
    each dropped one waits a second for its retry: slow requests, and health checks that can time out
    and roll a good release back. Connections beyond the busy threads wait in the backlog instead
    (the kernel caps it at net.core.somaxconn, 4096 on Fargate's kernels)."""

    request_queue_size = int(os.environ.get("LISTEN_BACKLOG", "1024"))
    daemon_threads = True

    def __init__(self, address: tuple[str, int], workers: int | None = None) -> None:
        self.workers = workers or int(os.environ.get("WORKER_THREADS", "64"))
        self._slots = threading.BoundedSemaphore(self.workers)
        super().__init__(address, Handler)

    def process_request(self, request, client_address) -> None:
        self._slots.acquire()  # a full house stops accepting: new connections queue in the backlog
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def serve(port: int | None = None, workers: int | None = None) -> Server:
    return Server(("0.0.0.0", port if port is not None else int(os.environ.get("PORT", "8080"))), workers)


def main() -> None:
    server = serve()
    LOG.info("listening", extra={"fields": {"port": server.server_address[1], "version": VERSION}})
    server.serve_forever()


if __name__ == "__main__":
    main()
