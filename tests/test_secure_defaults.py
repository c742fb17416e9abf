"""Secure defaults that must stay on: a test fails when one quietly falls back to a weaker default
(an AWS-managed key where the program chooses its own, a scan or a scanner dropped, encryption off)."""

from __future__ import annotations

import os

import pytest
import yaml
from conftest import ROOT


@pytest.fixture(params=["dev", "prod", "variant"])
def plan(request):
    return request.getfixturevalue(request.param)


def _keys(plan) -> dict[str, str]:
    """The program's own customer-managed keys, by name, as their ARNs."""
    keys = {r.name: r.outputs["arn"] for r in plan.all("aws:kms/key:Key")}
    assert set(keys) == {"data-key", "observability-key"}
    return keys


def test_every_key_the_program_creates_rotates_and_waits_before_deletion(plan):
    for key in plan.all("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True, key.name
        assert key.inputs.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"


def test_logs_topics_secrets_builds_and_images_use_the_programs_own_keys(plan):
    keys = _keys(plan)
    telemetry, data = keys["observability-key"], keys["data-key"]
    groups = plan.all("aws:cloudwatch/logGroup:LogGroup")
    assert groups and all(g.inputs.get("kmsKeyId") == telemetry for g in groups), [
        g.name for g in groups if g.inputs.get("kmsKeyId") != telemetry
    ]
    assert all(t.inputs.get("kmsMasterKeyId") == telemetry for t in plan.all("aws:sns/topic:Topic"))
    assert all(s.inputs.get("kmsKeyId") == data for s in plan.all("aws:secretsmanager/secret:Secret"))
    assert all(p.inputs.get("encryptionKey") == data for p in plan.all("aws:codebuild/project:Project"))
    for repository in [r for r in plan.registrations if r.type == "aws:ecr/repository:Repository"]:
        assert repository.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": data}]
    (pipeline,) = plan.all("aws:codepipeline/pipeline:Pipeline")
    stores = pipeline.inputs["artifactStores"]
    assert [s["encryptionKey"] for s in stores] == [{"id": data, "type": "KMS"}]


def test_every_bucket_is_encrypted_with_the_data_key_except_the_one_alb_logs_need(plan):
    data = _keys(plan)["data-key"]
    by_bucket = {}
    for config in plan.all("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"):
        (rule,) = config.inputs["rules"]
        by_bucket[config.inputs["bucket"]] = rule
    buckets = {b.inputs["bucket"] for b in plan.all("aws:s3/bucket:Bucket")}
    assert set(by_bucket) == buckets
    for bucket, rule in by_bucket.items():
        default = rule["applyServerSideEncryptionByDefault"]
        if "-alb-logs-" in bucket:
            # ALB delivers access logs only to SSE-S3 buckets (README, Security decisions).
            assert default == {"sseAlgorithm": "AES256"}
        else:
            assert default == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": data}, bucket
            assert rule["bucketKeyEnabled"] is True


def test_images_are_scanned_on_push_immutable_and_the_source_is_scanned_for_secrets(dev):
    (repository,) = [r for r in dev.registrations if r.type == "aws:ecr/repository:Repository"]
    assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository.inputs["imageTagMutability"] == "IMMUTABLE"
    with open(os.path.join(ROOT, "buildspecs", "trivy.yml"), encoding="utf-8") as handle:
        commands = yaml.safe_load(handle)["phases"]["build"]["commands"]
    (source,) = [c for c in commands if c.startswith("trivy fs")]
    scanners = source.split("--scanners ")[1].split()[0].split(",")
    assert "secret" in scanners and "vuln" in scanners  # a secret committed to git fails the build
    assert "--exit-code 1" in source
    assert any(c.startswith("trivy config --exit-code 1") for c in commands)
    with open(os.path.join(ROOT, "buildspecs", "scripts", "build-image.sh"), encoding="utf-8") as handle:
        image = handle.read()
    assert 'trivy image --exit-code 1 --severity "$TRIVY_SEVERITY"' in image


def test_tasks_run_read_only_as_a_user_without_public_addresses(plan):
    import json

    (task,) = plan.all("aws:ecs/taskDefinition:TaskDefinition")
    containers = json.loads(task.inputs["containerDefinitions"])
    assert containers and all(c["readonlyRootFilesystem"] is True for c in containers)
    assert all(c.get("user") not in (None, "", "0", "root") for c in containers)
    assert not any(c.get("privileged") for c in containers)
    (service,) = plan.all("aws:ecs/service:Service")
    assert service.inputs["networkConfiguration"]["assignPublicIp"] is False


def test_buckets_block_public_access_and_deny_plain_http(plan):
    blocks = plan.all("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    assert blocks and all(all(b.inputs[f] is True for f in flags) for b in blocks)
    import json

    for policy in plan.all("aws:s3/bucketPolicy:BucketPolicy"):
        statements = json.loads(policy.inputs["policy"])["Statement"]
        (deny,) = [s for s in statements if s.get("Sid") == "DenyInsecureTransport"]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
