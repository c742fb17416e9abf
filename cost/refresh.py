"""Rebuild cost/prices.json from the AWS Price List API, for users with AWS credentials:

    python -m cost.refresh                 # every region of the table, written in place
    python -m cost.refresh --check         # print what changed, write nothing

Needs `pricing:GetProducts` (no resource-level permissions: "*"). The API answers only in us-east-1,
eu-central-1 and ap-south-1, so the client is pinned to us-east-1 whatever the stack's region. Each
price is the OnDemand term's first tier of the product whose region and usagetype match; a price the
API does not answer keeps its current value and source, and is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from .estimate import PRICES, load_prices

# Usagetypes start with a region code, which us-east-1 omits in some offers (NatGateway-Hours).
REGION_CODES = {"us-east-1": "USE1", "us-east-2": "USE2", "us-west-2": "USW2", "eu-west-1": "EU"}

# key: (service code, usagetype without the region code, USD of the table's unit per Price List unit)
QUERIES: dict[str, tuple[str, str, float]] = {
    "fargate.vcpuHour.X86_64": ("AmazonECS", "Fargate-vCPU-Hours:perCPU", 1),
    "fargate.gbHour.X86_64": ("AmazonECS", "Fargate-GB-Hours", 1),
    "fargate.vcpuHour.ARM64": ("AmazonECS", "Fargate-ARM-vCPU-Hours:perCPU", 1),
    "fargate.gbHour.ARM64": ("AmazonECS", "Fargate-ARM-GB-Hours", 1),
    # Application, network, gateway and classic load balancers share these usagetypes: FAMILIES tells.
    "alb.hour": ("AWSELB", "LoadBalancerUsage", 1),
    "alb.lcuHour": ("AWSELB", "LCUUsage", 1),
    "nat.hour": ("AmazonEC2", "NatGateway-Hours", 1),
    "nat.gb": ("AmazonEC2", "NatGateway-Bytes", 1),
    "endpoint.hour": ("AmazonVPC", "VpcEndpoint-Hours", 1),
    "kms.keyMonth": ("awskms", "KMS-Keys", 1),
    "kms.requests10k": ("awskms", "KMS-Requests", 1e4),
    "endpoint.gb": ("AmazonVPC", "VpcEndpoint-Bytes", 1),
    "secretsmanager.secretMonth": ("AWSSecretsManager", "AWSSecretsManager-Secrets", 1),
    "cloudwatch.alarmMetricMonth": ("AmazonCloudWatch", "CW:AlarmMonitorUsage", 1),
    "logs.ingestGb": ("AmazonCloudWatch", "DataProcessing-Bytes", 1),
    "logs.storageGbMonth": ("AmazonCloudWatch", "TimedStorage-ByteHrs", 1),
    "ecr.storageGbMonth": ("AmazonECR", "TimedStorage-ByteHrs", 1),
    "xray.tracesMillion": ("AWSXRay", "XRay-TracesStored", 1e6),
    "waf.webAclMonth": ("awswaf", "WebACLV2", 1),
    "waf.ruleMonth": ("awswaf", "RuleV2", 1),
    "waf.requestsMillion": ("awswaf", "RequestV2-Tier1", 1e6),
    "s3.storageGbMonth": ("AmazonS3", "TimedStorage-ByteHrs", 1),
}


# The product family a key's usagetype is shared across, where it is.
FAMILIES = {"alb.hour": "Load Balancer-Application", "alb.lcuHour": "Load Balancer-Application"}


def usagetypes(region: str, wanted: str) -> list[str]:
    """The spellings of `wanted` in `region`'s offers (KMS spells the region out; us-east-1's older
    offers have no prefix)."""
    code = REGION_CODES.get(region, "")
    return [f"{code}-{wanted}", f"{region}-{wanted}", *([wanted] if region == "us-east-1" else [])]


def matches(usagetype: str, region: str, wanted: str) -> bool:
    """`USE1-Fargate-GB-Hours` (or, in us-east-1's older offers, `NatGateway-Hours`) is `wanted` in `region`."""
    code = REGION_CODES.get(region, "")
    # KMS spells the region out (us-west-2-KMS-Keys).
    return usagetype in (f"{code}-{wanted}", f"{region}-{wanted}") or (region == "us-east-1" and usagetype == wanted)


def first_tier_usd(product: Mapping[str, Any]) -> tuple[float, str] | None:
    """The OnDemand price of the tier starting at 0, and its unit; None without one."""
    for term in (product.get("terms", {}).get("OnDemand") or {}).values():
        for dimension in (term.get("priceDimensions") or {}).values():
            if str(dimension.get("beginRange", "0")) in ("0", "0.0"):
                usd = dimension.get("pricePerUnit", {}).get("USD")
                if usd is not None:
                    return float(usd), str(dimension.get("unit", ""))
    return None


def products(client: Any, service: str, region: str, usagetype: str) -> Iterable[dict[str, Any]]:
    """The products of `service` in `region` with `usagetype` (each PriceList entry is a JSON string)."""
    paginator = client.get_paginator("get_products")
    pages = paginator.paginate(
        ServiceCode=service,
        Filters=[
            {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
            {"Type": "TERM_MATCH", "Field": "usagetype", "Value": usagetype},
        ],
        FormatVersion="aws_v1",
    )
    for page in pages:
        for text in page.get("PriceList", []):
            yield json.loads(text)


def refresh(client: Any, table: dict[str, Any], today: str) -> tuple[dict[str, Any], list[str]]:
    """A new table with every price the API answers; and what it did not answer."""
    table = json.loads(json.dumps(table))
    table["sources"]["PRICE-LIST-API"] = {
        "what": "AWS Price List API (pricing:GetProducts, OnDemand first tier) via cost/refresh.py",
        "published": today,
    }
    missing: list[str] = []
    for key, (service, usagetype, factor) in QUERIES.items():
        entry = table["prices"][key]
        for region in [*entry["usd"], *entry.get("missing", {})]:
            found = [
                p
                for spelling in usagetypes(region, usagetype)
                for p in products(client, service, region, spelling)
                if matches(p.get("product", {}).get("attributes", {}).get("usagetype", ""), region, usagetype)
                and p.get("product", {}).get("productFamily")
                == FAMILIES.get(key, p.get("product", {}).get("productFamily"))
            ]
            prices = {first_tier_usd(p) for p in found} - {None}
            if len(prices) != 1:
                missing.append(f"{key} in {region}: {len(prices)} prices for {usagetype} (kept the table's)")
                continue
            usd, unit = prices.pop()
            usd = round(usd * factor, 10)
            before = entry["usd"].get(region, [None])[0]
            # A price off by more than 3x is more likely a unit we misread (per request, per million) than
            # a price change: kept, and reported for a person to check.
            if before and not before / 3 <= usd <= before * 3:
                missing.append(
                    f"{key} in {region}: {usd} per {unit} against {before} (over 3x apart; kept the table's)"
                )
                continue
            entry["usd"][region] = [usd, "PRICE-LIST-API"]
            entry.get("missing", {}).pop(region, None)
    # The table's date is today's only when every price in it is: else the oldest stands.
    refreshed = all(
        region_entry[1] == "PRICE-LIST-API" for e in table["prices"].values() for region_entry in e["usd"].values()
    )
    if refreshed:
        table["compiled"] = today
    return table, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="print the changes, write nothing")
    parser.add_argument("--out", default=PRICES)
    args = parser.parse_args(argv)
    import botocore.session

    client = botocore.session.get_session().create_client("pricing", region_name="us-east-1")
    old = load_prices()
    new, missing = refresh(client, old, date.today().isoformat())
    for key, entry in new["prices"].items():
        for region, (usd, _source) in entry["usd"].items():
            before = old["prices"][key]["usd"].get(region, [None])[0]
            if before != usd:
                print(f"{key} {region}: {before} -> {usd}")
    for line in missing:
        print(f"not refreshed: {line}", file=sys.stderr)
    answered = sum(1 for e in new["prices"].values() for _, source in e["usd"].values() if source == "PRICE-LIST-API")
    kept = sum(len(e["usd"]) for e in new["prices"].values()) - answered
    print(
        f"{answered} prices from the Price List API; {kept} kept as the table had them (not queried, or not "
        f"answered: listed above); the table is dated {new['compiled']}",
        file=sys.stderr,
    )
    if not answered:
        print("error: the API answered nothing (credentials? pricing:GetProducts?); nothing written", file=sys.stderr)
        return 2
    if not args.check:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(new, handle, indent=1)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
