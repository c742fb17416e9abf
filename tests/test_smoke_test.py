"""The smoke-test lifecycle hook against a real HTTP server on loopback and a fake EC2 API."""

import importlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class FakeEc2:
    def __init__(self, addresses):
        self.addresses = addresses
        self.filters = None

    def get_paginator(self, name):
        assert name == "describe_network_interfaces"
        return self

    def paginate(self, Filters):  # noqa: N803 - boto3's argument name
        self.filters = Filters
        return [{"NetworkInterfaces": [{"PrivateIpAddress": a} for a in self.addresses]}]


@pytest.fixture()
def target(monkeypatch):
    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status["code"] if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("LB_NAME", "web-dev-alb")
    monkeypatch.setenv("TEST_PORT", str(httpd.server_address[1]))
    monkeypatch.setenv("HEALTH_PATH", "/health")
    monkeypatch.setenv("SCHEME", "http")
    monkeypatch.setenv("ATTEMPTS", "1")
    sys.modules.pop("components.lambdas.smoke_test", None)
    module = importlib.import_module("components.lambdas.smoke_test")
    yield module, status
    httpd.shutdown()
    httpd.server_close()


def test_healthy_green_lets_the_deployment_continue(target):
    module, _ = target
    ec2 = FakeEc2(["127.0.0.1"])
    assert module.handler({"serviceArn": "arn"}, None, ec2=ec2) == {"hookStatus": "SUCCEEDED"}
    assert ec2.filters == [{"Name": "description", "Values": ["ELB app/web-dev-alb/*"]}]


def test_unhealthy_green_fails_the_deployment(target):
    module, status = target
    status["code"] = 503
    assert module.handler({}, None, ec2=FakeEc2(["127.0.0.1"])) == {"hookStatus": "FAILED"}


def test_no_load_balancer_nodes_fails_the_deployment(target):
    module, _ = target
    assert module.handler({}, None, ec2=FakeEc2([])) == {"hookStatus": "FAILED"}


def test_one_unhealthy_node_among_healthy_ones_fails_the_deployment(target):
    """Green must answer through every load balancer node (one per zone): a release broken in one zone
    is not shifted to production. 127.0.0.2 is loopback too, and nothing listens on its port there."""
    module, _ = target
    assert module.handler({}, None, ec2=FakeEc2(["127.0.0.1", "127.0.0.1"])) == {"hookStatus": "SUCCEEDED"}
    assert module.handler({}, None, ec2=FakeEc2(["127.0.0.1", "127.0.0.2"])) == {"hookStatus": "FAILED"}
