"""Values AWS refuses only when it is called: each held against the limit AWS states, from botocore's
service models where they carry it (as the naming policy does) and from AWS's documentation where they
do not (named in the test). Both sample stacks, and the variant with the other choices, are checked."""

from __future__ import annotations

import json
import os
import re
import subprocess

import botocore.session
import pytest
from conftest import ROOT
from test_scripts import AWS_STUB, SCRIPTS, release_env, stub

import config

MODELS = botocore.session.get_session()


def member(service: str, operation: str, name: str) -> dict:
    return MODELS.get_service_model(service).operation_model(operation).input_shape.members[name].metadata


def shape(service: str, name: str) -> dict:
    return MODELS.get_service_model(service).shape_for(name).metadata


@pytest.fixture(params=["dev", "prod", "variant"])
def plan(request):
    return request.getfixturevalue(request.param)


# -- CodePipeline and CodeBuild ------------------------------------------------------------------------


def test_every_pipeline_action_configuration_value_fits_codepipelines_limit(plan):
    limit = shape("codepipeline", "ActionConfigurationValue")
    assert (limit["min"], limit["max"]) == (1, 1000)
    values = [
        (action["name"], key, value)
        for stage in plan.one("aws:codepipeline/pipeline:Pipeline").inputs["stages"]
        for action in stage["actions"]
        for key, value in action["configuration"].items()
    ]
    assert len(values) >= 8
    for name, key, value in values:
        assert isinstance(value, str) and limit["min"] <= len(value) <= limit["max"], (name, key, len(value))


def test_every_build_project_times_out_within_codebuilds_range(plan):
    build, queued = (member("codebuild", "CreateProject", n) for n in ("timeoutInMinutes", "queuedTimeoutInMinutes"))
    projects = plan.all("aws:codebuild/project:Project")
    for project in projects:
        timeout = project.inputs.get("buildTimeout", 60)
        assert build["min"] <= timeout <= build["max"], project.name
        assert queued["min"] <= project.inputs.get("queuedTimeout", 480) <= queued["max"], project.name


def test_a_deploy_job_may_wait_as_long_as_a_pipeline_build_action_runs_and_no_longer():
    # CodeBuild allows 2160 minutes; CodePipeline stops a build action after 8 hours (its quotas page).
    build = member("codebuild", "CreateProject", "timeoutInMinutes")
    assert config.DEPLOY_JOB_MAX_MINUTES == 8 * 60 <= build["max"]


# -- the load balancer's health checks ---------------------------------------------------------------


def test_target_group_health_checks_are_within_elbs_ranges(plan):
    ranges = {
        "interval": member("elbv2", "CreateTargetGroup", "HealthCheckIntervalSeconds"),
        "timeout": member("elbv2", "CreateTargetGroup", "HealthCheckTimeoutSeconds"),
        "healthyThreshold": member("elbv2", "CreateTargetGroup", "HealthyThresholdCount"),
        "unhealthyThreshold": member("elbv2", "CreateTargetGroup", "UnhealthyThresholdCount"),
    }
    groups = plan.all("aws:lb/targetGroup:TargetGroup")
    assert len(groups) == 2
    for group in groups:
        check = group.inputs["healthCheck"]
        for key, limit in ranges.items():
            assert limit["min"] <= check[key] <= limit["max"], (group.name, key)
        assert check["timeout"] < check["interval"]  # ELB refuses a timeout that is not below the interval
        assert 1 <= len(check["path"]) <= member("elbv2", "CreateTargetGroup", "HealthCheckPath")["max"]
        # AWS documents 0-3600 seconds for the deregistration delay.
        assert 0 <= int(group.inputs["deregistrationDelay"]) <= 3600


@pytest.mark.parametrize("interval", [5, 6, 300])
def test_the_shortest_and_longest_health_check_intervals_config_accepts_plan_within_range(interval):
    from conftest import run_plan

    plan = run_plan("dev", **{"cicd:deployment": {"healthCheckIntervalSeconds": interval}})
    for group in plan.all("aws:lb/targetGroup:TargetGroup"):
        check = group.inputs["healthCheck"]
        assert 2 <= check["timeout"] < check["interval"] == interval


# -- CloudWatch alarms, deletion windows -------------------------------------------------------------


def test_every_alarm_has_a_period_and_counts_cloudwatch_accepts(plan):
    description = member("cloudwatch", "PutMetricAlarm", "AlarmDescription")
    alarms = plan.all("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(alarms) >= 5
    for alarm in alarms:
        a = alarm.inputs
        # AWS documents a period of 10, 20 or 30 seconds (high resolution) or a multiple of 60.
        periods = (
            [a["period"]] if "period" in a else [q["metric"]["period"] for q in a["metricQueries"] if "metric" in q]
        )
        assert periods and all(p in (10, 20, 30) or p % 60 == 0 for p in periods), alarm.name
        assert 1 <= a.get("datapointsToAlarm", a["evaluationPeriods"]) <= a["evaluationPeriods"], alarm.name
        assert len(a.get("alarmDescription", "")) <= description["max"], alarm.name


def test_secrets_and_keys_wait_within_the_windows_aws_allows(prod, dev):
    # AWS documents 7-30 days for both (Secrets Manager's RecoveryWindowInDays, KMS's PendingWindowInDays).
    for plan in (dev, prod):
        for secret in plan.all("aws:secretsmanager/secret:Secret"):
            assert 7 <= secret.inputs["recoveryWindowInDays"] <= 30, secret.name
        for key in plan.all("aws:kms/key:Key"):
            assert 7 <= key.inputs["deletionWindowInDays"] <= 30, key.name
    # prod waits the longest: a deleted secret or key can be restored for a month.
    assert {s.inputs["recoveryWindowInDays"] for s in prod.all("aws:secretsmanager/secret:Secret")} == {30}


# -- what the scripts pass to STS and SSM --------------------------------------------------------------


@pytest.mark.parametrize("session", ["deploy-dev", "preview-pr-7/refs heads", "x", "ä" * 3, "p" * 100])
def test_the_role_session_sts_is_asked_for_is_one_it_accepts(tmp_path, session):
    name, duration = member("sts", "AssumeRole", "RoleSessionName"), member("sts", "AssumeRole", "DurationSeconds")
    stub(tmp_path, "aws", 'echo "arn:aws:sts::123456789012:assumed-role/r/s"')
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path), "AWS_REGION": "us-east-1"}
    result = subprocess.run(
        ["bash", os.path.join(SCRIPTS, "use-role.sh"), "arn:aws:iam::123456789012:role/r", session],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    profile = _profile(tmp_path)
    assert name["min"] <= len(profile["role_session_name"]) <= name["max"]
    assert re.fullmatch(name["pattern"], profile["role_session_name"])
    # A chained role session (CodeBuild's role assuming the deploy role) lasts an hour at most.
    assert duration["min"] <= int(profile["duration_seconds"]) <= 3600 <= duration["max"]


def _profile(home) -> dict[str, str]:
    lines = (home / ".aws" / "config").read_text().splitlines()
    return dict(line.split(" = ", 1) for line in lines if " = " in line)


def test_the_reader_session_name_is_one_sts_accepts_for_every_environment():
    name = member("sts", "AssumeRole", "RoleSessionName")
    with open(os.path.join(SCRIPTS, "verify-release.sh"), encoding="utf-8") as handle:
        (template,) = re.findall(r'--role-session-name "([^"]+)"', handle.read())
    for environment in config.ENVIRONMENTS:
        session = template.replace("$PROMOTE_FROM", environment)
        assert re.fullmatch(name["pattern"], session) and name["min"] <= len(session) <= name["max"], session


def test_the_release_record_fits_a_standard_parameter_with_the_longest_approver(tmp_path):
    """Parameter Store refuses a standard-tier value over 4 KB (AWS's documented limit; botocore's
    model marks the value sensitive and gives no length): the record must stay well under it."""
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    approver = "arn:aws:sts::123456789012:assumed-role/" + "r" * 64 + "/" + "s" * 64
    env = release_env(tmp_path, APPROVER=approver)
    env["PATH"] = f"{tmp_path}:/usr/bin:/bin"
    result = subprocess.run(
        ["bash", os.path.join(SCRIPTS, "publish-release.sh"), str(tmp_path / "out")],
        cwd=ROOT,
        env={**env, "HOME": str(tmp_path), "AWS_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    record = (tmp_path / "s3" / "parameter.json").read_bytes()
    assert json.loads(record)["approver"] == approver
    assert len(record) <= 4096 // 2, len(record)  # half the limit: room for what a record may gain
    name = member("ssm", "PutParameter", "Name")
    assert len(env["RELEASE_PARAMETER"]) <= name["max"]
