"""The release record: what an environment runs after a deploy succeeded and baked with its rollback
alarms quiet. One SSM parameter per environment holds the newest release (SSM keeps its last 100
versions: `aws ssm get-parameter-history`); the environment's releases bucket keeps every record and,
for a building environment, the source each release was built from.

The record is JSON: {"image": "<repo>@sha256:…", "commit": "<git sha>", "committed": "<commit time>",
"time": "<ISO 8601 UTC>", "execution": "<pipeline execution id>", "approver": "<who approved, or none>",
"environment": "dev", "source": "s3://<bucket>/<key of the source bundle>", "bundle_sha256": "<hex>"},
and in a promoting environment also "promoted_from".
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws


def release_parameter(project: str, service: str, environment: str) -> str:
    """The SSM parameter that holds an environment's newest release."""
    return f"/{project}/{service}/{environment}/release"


def reader_role_name(upstream_prefix: str, downstream_prefix: str) -> str:
    """The role in the upstream's account through which a stack in another account reads the upstream's
    release records and bundles (created by the upstream's stack, assumed by the downstream's)."""
    return f"{upstream_prefix}-reader-{downstream_prefix}"


def releases_bucket_name(prefix: str, account_id: pulumi.Input[str]) -> pulumi.Output[str]:
    """A stack's releases bucket: `<service>-<env code>-releases-<account>` (known from config)."""
    return pulumi.Output.concat(prefix, "-releases-", account_id)


def released_image(project: str, service: str, environments: Sequence[str]) -> tuple[str, str]:
    """The image of the first of `environments` that has a release record, and that environment;
    ("", "") when none has one yet. Asked of SSM at every preview and update (GetParametersByPath
    answers an empty list for a path with no parameters, so a stack before its first release works)."""
    for environment in environments:
        name = release_parameter(project, service, environment)
        found = aws.ssm.get_parameters_by_path(path=name.rsplit("/", 1)[0] + "/", with_decryption=False)
        for parameter, value in zip(found.names, found.values, strict=False):
            if parameter == name:
                try:
                    image = json.loads(value).get("image", "")
                except (ValueError, AttributeError):
                    raise ValueError(
                        f"the release record {name} is not the JSON publish-release.sh writes; fix or delete it "
                        f"(aws ssm get-parameter-history --name {name}), or set cicd:service.image"
                    ) from None
                if "@sha256:" not in image:
                    raise ValueError(f"the release record {name} names no image digest ({image!r})")
                return image, environment
    return "", ""
