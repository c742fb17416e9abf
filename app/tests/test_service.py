"""The sample service's own tests: a real server on a loopback port."""

import json
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service import healthcheck, server  # noqa: E402


@pytest.fixture()
def base_url(monkeypatch):
    httpd = server.serve(port=0)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("PORT", str(port))
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()
    httpd.server_close()


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_health_is_ok(base_url):
    status, _, body = get(f"{base_url}/health")
    assert (status, body) == (200, {"status": "ok"})


def test_greeting_greets_by_name(base_url):
    status, _, body = get(f"{base_url}/api/greeting?name=Ada")
    assert status == 200
    assert body["greeting"] == "Hello, Ada!"


def test_greeting_rejects_bad_names(base_url):
    status, _, body = get(f"{base_url}/api/greeting?name=%3Cscript%3E")
    assert status == 400
    assert "name" in body["error"]


def test_unknown_path_is_404(base_url):
    assert get(f"{base_url}/nope")[0] == 404


def test_trace_header_passes_through_to_response_and_logs(base_url, capsys):
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    status, headers, _ = get(f"{base_url}/api/greeting", {"X-Amzn-Trace-Id": trace})
    assert status == 200
    assert headers["X-Amzn-Trace-Id"] == trace
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["message"] == "request"]
    assert requests, "the request was not logged"
    assert requests[-1]["trace"] == trace
    assert requests[-1]["status"] == 200


def test_healthcheck_command_reports_health(base_url):
    assert healthcheck.main() == 0


def test_healthcheck_command_fails_without_server(monkeypatch):
    monkeypatch.setenv("PORT", "9")  # the discard port: nothing listens
    assert healthcheck.main() == 1


def test_sampled_requests_send_a_segment_to_the_daemon(base_url, monkeypatch):
    import socket

    from service import tracing

    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    daemon.bind(("127.0.0.1", 0))
    daemon.settimeout(5)
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", f"127.0.0.1:{daemon.getsockname()[1]}")
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    assert get(f"{base_url}/api/greeting?name=Ada", {"X-Amzn-Trace-Id": trace})[0] == 200
    header, body = daemon.recv(65536).decode().split("\n", 1)
    daemon.close()
    assert json.loads(header) == tracing.HEADER
    document = json.loads(body)
    assert document["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert document["parent_id"] == "53995c3f42cd8ad8"
    assert document["http"]["response"]["status"] == 200
    assert document["end_time"] >= document["start_time"]


def test_sampling_honours_upstream_decisions_and_the_rate():
    from service import tracing

    assert tracing.should_sample({"Root": "1-x", "Sampled": "0"}, 1.0) is False
    assert tracing.should_sample({"Root": "1-x", "Sampled": "1"}, 0.0) is True
    assert tracing.should_sample({"Root": "1-x"}, 0.05, draw=lambda: 0.01) is True
    assert tracing.should_sample({"Root": "1-x"}, 0.05, draw=lambda: 0.5) is False
    assert tracing.parse_header("garbage") == {}
    assert tracing.segment("web", {"Root": "1-x"}, 1.0, 2.0, "GET", "/", 503)["fault"] is True
    # The boundaries: 500 is a fault (server), 499 an error (client), 399 neither.
    fault = tracing.segment("web", {"Root": "1-x"}, 1.0, 2.0, "GET", "/", 500)
    assert fault["fault"] is True and not fault.get("error")
    client = tracing.segment("web", {"Root": "1-x"}, 1.0, 2.0, "GET", "/", 499)
    assert client.get("error") is True and not client.get("fault")
    ok = tracing.segment("web", {"Root": "1-x"}, 1.0, 2.0, "GET", "/", 399)
    assert not ok.get("error") and not ok.get("fault")
