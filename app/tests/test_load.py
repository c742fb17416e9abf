"""The service under concurrent connections on loopback: bounded in requests and time."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import loadtest  # noqa: E402
from service import server  # noqa: E402

# A dropped SYN is retried after one second: any request that slow means the backlog overflowed.
SYN_RETRY_SECONDS = 1.0


def test_a_burst_of_connections_waits_in_the_backlog_not_in_syn_retries():
    httpd = loadtest.run_server()
    try:
        result = loadtest.measure(httpd.server_address[1], clients=32, requests_per_client=10)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result["errors"] == 0 and result["requests"] == 320
    assert result["max"] < SYN_RETRY_SECONDS, result


def test_busy_threads_queue_connections_instead_of_refusing_them():
    httpd = server.serve(port=0, workers=2)
    import threading

    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        result = loadtest.measure(httpd.server_address[1], clients=16, requests_per_client=5)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert httpd.workers == 2
    assert result["errors"] == 0 and result["requests"] == 80


def test_the_listen_backlog_is_sized_for_a_load_balancer():
    assert server.Server.request_queue_size >= 512
