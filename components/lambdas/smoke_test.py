"""ECS deployment lifecycle hook: probe the new revision through the test listener.

ECS invokes this at POST_TEST_TRAFFIC_SHIFT, when the test listener already routes to the green
tasks and production traffic still goes to blue. Returning FAILED rolls the deployment back.

The ALB is internet-facing, so its DNS name resolves to public addresses that a VPC function would
reach only through NAT (with the NAT's address as the source, which the test listener refuses). The
function therefore probes the load balancer's nodes on their private addresses, found from the
ALB's network interfaces, exactly as a client inside the VPC would.
"""

import json
import os
import ssl
import urllib.error
import urllib.request

LB_NAME = os.environ["LB_NAME"]
TEST_PORT = int(os.environ["TEST_PORT"])
HEALTH_PATH = os.environ["HEALTH_PATH"]
SCHEME = os.environ["SCHEME"]
ATTEMPTS = int(os.environ.get("ATTEMPTS", "3"))


def _node_addresses(ec2):
    pages = ec2.get_paginator("describe_network_interfaces").paginate(
        Filters=[{"Name": "description", "Values": [f"ELB app/{LB_NAME}/*"]}]
    )
    return [eni["PrivateIpAddress"] for page in pages for eni in page["NetworkInterfaces"]]


def _probe(address):
    url = f"{SCHEME}://{address}:{TEST_PORT}{HEALTH_PATH}"
    # The certificate names the public domain, not a node's private address: the check is the
    # status code of our own listener inside our own VPC, so the name is not verified here.
    context = ssl._create_unverified_context() if SCHEME == "https" else None  # noqa: S323
    request = urllib.request.Request(url, headers={"User-Agent": "ecs-smoke-test"})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except (urllib.error.URLError, OSError):
        return None


def handler(event, _context, ec2=None):
    if ec2 is None:
        import boto3  # in the Lambda runtime; imported here so the handler can be tested without it

        ec2 = boto3.client("ec2")
    addresses = _node_addresses(ec2)
    if not addresses:
        print(json.dumps({"result": "FAILED", "reason": "no load balancer nodes found", "lb": LB_NAME}))
        return {"hookStatus": "FAILED"}
    statuses = {}
    for address in addresses:
        for _ in range(ATTEMPTS):
            statuses[address] = _probe(address)
            if statuses[address] == 200:
                break
    healthy = all(status == 200 for status in statuses.values())
    print(
        json.dumps(
            {
                "result": "SUCCEEDED" if healthy else "FAILED",
                "statuses": statuses,
                "serviceArn": event.get("serviceArn"),
                "targetServiceRevisionArn": event.get("targetServiceRevisionArn"),
            }
        )
    )
    return {"hookStatus": "SUCCEEDED" if healthy else "FAILED"}
