"""X-Ray without an SDK: the trace header the ALB sets, a sampling decision, and a segment sent to
the X-Ray daemon sidecar over UDP (the daemon forwards it to X-Ray).

The ALB starts a trace (Root=…) but makes no sampling decision; an upstream caller may have made one
(Sampled=1 or 0), which is honoured. Otherwise the service samples at XRAY_SAMPLING_RATE, the same
rate as the stack's X-Ray sampling rule.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time

HEADER = {"format": "json", "version": 1}


def parse_header(value: str | None) -> dict[str, str]:
    """`Root=1-…;Parent=…;Sampled=1` as a dict; empty for a missing or malformed header."""
    fields = {}
    for part in (value or "").split(";"):
        key, sep, val = part.strip().partition("=")
        if sep and key:
            fields[key] = val
    return fields if fields.get("Root", "").startswith("1-") else {}


def should_sample(fields: dict[str, str], rate: float, draw=random.random) -> bool:
    if fields.get("Sampled") in ("0", "1"):
        return fields["Sampled"] == "1"
    return draw() < rate


def segment(name: str, fields: dict[str, str], start: float, end: float, method: str, path: str, status: int) -> dict:
    document = {
        "name": name,
        "id": os.urandom(8).hex(),
        "trace_id": fields["Root"],
        "start_time": start,
        "end_time": end,
        "http": {"request": {"method": method, "url": path}, "response": {"status": status}},
    }
    if "Parent" in fields:
        document["parent_id"] = fields["Parent"]
    if status >= 500:
        document["fault"] = True
    elif status >= 400:
        document["error"] = True
    return document


def daemon_address() -> tuple[str, int]:
    host, _, port = os.environ.get("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000").rpartition(":")
    return host or "127.0.0.1", int(port)


def send(document: dict, address: tuple[str, int] | None = None) -> None:
    """Fire and forget: tracing never fails a request."""
    payload = (json.dumps(HEADER) + "\n" + json.dumps(document)).encode()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, address or daemon_address())
    except OSError:
        pass


def now() -> float:
    return time.time()
