"""Whole-program tests: each stack plans, passes every mandatory policy, and has its components."""

import json
import re

import pytest
from conftest import POLICY_DIR, policy_config

from offline import analyzer
from offline import plan as plan_cli

COMPONENTS = {
    "cicd:network:Network",
    "cicd:image:ContainerImage",
    "cicd:service:FargateService",
    "cicd:observability:Observability",
    "cicd:encryption:KmsKey",
    "cicd:source:SourceRepository",
    "cicd:pipeline:BuildPipeline",
    "cicd:monitoring:Monitoring",
    "cicd:securitygroups:ServiceSecurityGroups",
    "cicd:loadbalancer:LoadBalancer",
    "cicd:taskdefinition:TaskDefinition",
    "cicd:releasechecks:ReleaseChecks",
    "cicd:bluegreen:BlueGreenService",
    "cicd:buildprojects:BuildProjects",
    "cicd:releasepipeline:ReleasePipeline",
    "cicd:drift:DriftDetection",
    "cicd:previews:PullRequestPreviews",
    "cicd:alarms:ServiceAlarms",
    "cicd:delivery:DeliveryMetrics",
}
OPTIONAL = {"cicd:waf:WebFirewall"}  # with cicd:waf (prod's default)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_has_every_component(stack, dev, prod):
    plan = {"dev": dev, "prod": prod}[stack]
    types = {r.type for r in plan.registrations if not r.custom}
    building_only = {"cicd:source:SourceRepository", "cicd:previews:PullRequestPreviews"}
    assert types >= (COMPONENTS if stack == "dev" else COMPONENTS - building_only)
    if stack == "prod":
        assert not types & building_only
    for r in plan.registrations:
        if r.custom and not r.type.startswith("awsx:"):
            assert r.parent.split("::")[2].split("$")[-1] in COMPONENTS | OPTIONAL, f"{r.name} is not in a component"
    assert ("cicd:waf:WebFirewall" in types) is (stack == "prod")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_stack_passes_every_mandatory_policy(stack, dev, prod, policy_server):
    plan = {"dev": dev, "prod": prod}[stack]
    policy_server.configure(policy_config(stack))
    findings = policy_server.analyze(plan.registrations, region=plan.result.config["aws:region"])
    policy_server.configure({})
    mandatory = [f"{f.policy}: {f.message}" for f in findings if f.level == "mandatory" and not f.could_not_run]
    assert mandatory == []
    # The pack really ran: every custom resource was analyzed and the pack knows its policies.
    assert len(policy_server.info().policies) >= 35


def test_prod_has_no_advisory_findings_either(prod, policy_server):
    policy_server.configure(policy_config("prod"))
    findings = policy_server.analyze(prod.registrations, region="us-east-1")
    policy_server.configure({})
    assert [f.policy for f in findings] == []


def test_dev_advisories_are_the_documented_ones(dev, policy_server):
    policy_server.configure(policy_config("dev"))
    findings = policy_server.analyze(dev.registrations, region="us-east-1")
    policy_server.configure({})
    assert sorted({f.policy for f in findings}) == ["lb-deletion-protection", "lb-http-redirects-to-https"]
    assert {f.level for f in findings} == {"advisory"}


def test_without_policy_config_dev_fails_the_prod_only_rules(dev, policy_server):
    policy_server.configure({})
    findings = policy_server.analyze(dev.registrations, region="us-east-1")
    assert {f.policy for f in findings if f.level == "mandatory"} == {
        "lb-deletion-protection",
        "lb-http-redirects-to-https",
    }


def test_plan_cli_writes_json_and_passes(tmp_path, capsys):
    out = tmp_path / "plan.json"
    assert plan_cli.main(["--stack", "prod", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Policy check passed" in printed
    assert "cicd:service:FargateService" in printed
    data = json.loads(out.read_text())
    assert data["mandatoryViolations"] == 0
    assert data["counts"]["aws:ecs/service:Service"] == 1
    # Counts are of real resources: components are structure, not things AWS creates.
    assert not [t for t in data["counts"] if t.startswith("cicd:")]
    assert sum(data["counts"].values()) == sum(r["custom"] for r in data["resources"])
    assert data["outputs"]["url"].startswith("https://")


def test_plan_cli_fails_on_a_mandatory_violation(monkeypatch, capsys):
    monkeypatch.setattr(plan_cli, "policy_config_path", lambda stack: None)
    assert plan_cli.main(["--stack", "dev"]) == 1
    assert "Policy check FAILED" in capsys.readouterr().out


def test_plan_cli_reports_config_errors_by_key(monkeypatch, capsys):
    monkeypatch.setattr(
        plan_cli.program,
        "load_stack_config",
        lambda stack, root=None: ({"aws:region": "us-east-1", "cicd:service": '{"cpu": 300}'}, []),
    )
    assert plan_cli.main(["--stack", "dev"]) == 1
    assert "cicd:service.cpu" in capsys.readouterr().err


def test_first_preview_leaves_computed_outputs_unknown_and_reports_unrun_checks(policy_server):
    data = plan_cli.plan("dev", first_preview=True, server=policy_server)
    assert data["outputs"]["url"] is None
    assert data["mandatoryViolations"] == 0
    # Every check runs: names the program chooses, ARNs from known parts, and the locally built image by
    # its content-addressed tag, not by the digest that exists only after the build.
    assert data["notRun"] == []


def test_first_preview_hands_stack_policies_computed_outputs_as_unknown():
    """What the provider computes is unknown at a first preview (as the engine sends it), not missing,
    so a stack policy reading an ARN cannot run instead of silently seeing None."""
    from pulumi.runtime import rpc

    preview = _first_preview("dev", "")
    group = next(r for r in preview.registrations.values() if r.type == "aws:lb/targetGroup:TargetGroup")
    assert group.output_object.fields["arn"].string_value == rpc.UNKNOWN
    assert group.output_object.fields["name"].string_value == group.inputs["name"]  # set by the program
    assert "arn" not in group.object.fields  # resource policies get the inputs only


def test_first_preview_with_a_pipeline_digest_runs_every_check(policy_server):
    digest = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev@sha256:" + "a" * 64
    preview = _first_preview("dev", digest)
    assert preview.outputs["imageRef"] == digest
    task = [r for r in preview.registrations.values() if r.type == "aws:ecs/taskDefinition:TaskDefinition"][0]
    assert json.loads(task.inputs["containerDefinitions"])[0]["image"] == digest
    result = analyzer.run_pack(
        POLICY_DIR, preview.registrations.values(), policy_config=policy_config("dev"), server=policy_server
    )
    assert result.not_run == []
    assert result.mandatory == []


def _first_preview(stack, digest):
    from offline import program

    config, secrets = program.load_stack_config(stack)
    service = json.loads(config["cicd:service"])
    service["image"] = digest
    config["cicd:service"] = json.dumps(service)
    return program.run(stack, first_preview=True, config=config, secret_keys=secrets)


SERVICES = {
    "cloudwatch": {"cloudwatch", "logs", "events"},
    "lb": {"elasticloadbalancing"},
    "lambda": {"lambda"},
    "appautoscaling": {"application-autoscaling", "autoscaling"},
    "codestarnotifications": {"codestar-notifications"},
    "vpc": {"ec2"},
}


def test_mock_outputs_are_arns_of_their_service(dev, prod):
    """The plan's outputs look like AWS's: an ARN's service is the resource's own."""
    checked = 0
    for plan in (dev, prod):
        for r in plan.registrations:
            if not r.custom or r.type.startswith(("awsx:", "docker:")):
                continue
            arn = r.outputs.get("arn") or r.outputs.get("dashboardArn") or r.outputs.get("chatConfigurationArn")
            if not arn or "arn" in r.inputs:  # an input `arn` names another resource (a target, a topic)
                continue
            parts = arn.split(":")
            module = r.type.split(":")[1].split("/")[0]
            assert parts[0] == "arn" and parts[1] == "aws" and len(parts) >= 6, arn
            assert parts[2] in SERVICES.get(module, {module}), (r.type, arn)
            checked += 1
    assert checked > 100


DUPLICATE = """
import pulumi_aws as aws
from offline import program

def build():
    aws.sns.Topic("alerts", name="a")
    aws.sns.Topic("alerts", name="b")

program.record(build)
"""


def test_two_resources_with_one_urn_fail_as_in_the_engine():
    """In its own process: a failed registration leaves Pulumi's runtime unusable for later runs."""
    import subprocess
    import sys

    from conftest import ROOT

    result = subprocess.run([sys.executable, "-c", DUPLICATE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Duplicate resource URN" in result.stderr and "aws:sns/topic:Topic" in result.stderr


def test_a_failing_stack_is_named_and_does_not_hide_the_others(tmp_path):
    """The CLI as a user runs it (a fresh process that forks one child per stack)."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    bad = os.path.join(ROOT, f"Pulumi.citest-{os.getpid()}.yaml")
    with open(bad, "w", encoding="utf-8") as handle:
        # Its own service name: no physical name of the sample dev stack, which tests running beside it plan.
        handle.write("config:\n  aws:region: us-east-1\n  cicd:service:\n    cpu: 300\n    name: citest\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "offline.plan", "--stack", f"{os.path.basename(bad)[7:-5]},prod"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        os.remove(bad)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # Every error of the stack file at once, a line each (this file also lacks the pipeline's backend).
    # Each names where the stack file sets the key, or (a key it lacks) the nearest one it has.
    name = f"citest-{os.getpid()}"
    assert errors[:2] == [
        f"error: stack {name}: Pulumi.{name}.yaml:4: cicd:service.cpu must be one of 256, 512, 1024, 2048, "
        "4096, 8192, 16384; got 300",
        f"error: stack {name}: Pulumi.{name}.yaml: cicd:pipeline.backendUrl is required: the Pulumi state backend "
        "(s3://… or https://api.pulumi.com) the pipeline's deploy, preview and drift jobs log in to",
    ]
    assert len(errors) == 4  # the deploy role and SonarQube's organization are missing too, said at once
    assert "Plan for stack prod" in result.stdout  # the other stack is still planned and reported
    assert f"  {name}: FAILED: Pulumi.{name}.yaml:4: cicd:service.cpu" in result.stdout
    assert "(and 3 more)" in result.stdout
    assert "  prod: passed: " in result.stdout


def test_a_program_crash_is_one_line_unless_verbose(monkeypatch, capsys):
    def crash(stack, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(plan_cli.program, "run", crash)
    assert plan_cli.main(["--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: stack dev: the program failed: RuntimeError: boom second line (--verbose shows the traceback)"
    )
    assert plan_cli.main(["--stack", "dev", "--verbose"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"lb-deletion-protection": "strict"}', "lb-deletion-protection has enforcement level 'strict'; allowed: "),
        ('{"lb-deletion-protection": advisory}', ":1:28: not valid JSON"),
        ('{"lb-deletion-protect": "advisory"}', "lb-deletion-protect is not a policy of the pack"),
        ('{"lb-deletion-protection": 3}', "must be a level"),
        # Property values against the policy's own schema, as the CLI checks them: never a traceback.
        (
            '{"monthly-budget": {"maxMonthlyUsd": "300"}}',
            "monthly-budget.maxMonthlyUsd must be of type number; got '300' (str)",
        ),
        ('{"monthly-budget": {"maxMonthlyUsd": -5}}', "monthly-budget.maxMonthlyUsd must be at least 0; got -5"),
        (
            '{"monthly-budget": {"maxMonthlyUsd": true}}',
            "monthly-budget.maxMonthlyUsd must be of type number; got True",
        ),
        (
            '{"cloudwatch-log-group-retention": {"minimumRetentionDays": 7.5}}',
            "minimumRetentionDays must be of type integer; got 7.5 (float)",
        ),
        ('{"required-tags": {"tags": ["team", 3]}}', "required-tags.tags[1] must be of type string; got 3 (int)"),
        (
            '{"monthly-budget": {"maxMonthlyUSD": 100}}',
            "monthly-budget.maxMonthlyUSD is not a property of the policy (it has: maxMonthlyUsd)",
        ),
    ],
)
def test_a_bad_policy_config_is_one_line_naming_file_and_policy(text, expected, tmp_path, monkeypatch, capsys):
    path = tmp_path / "dev.json"
    path.write_text(text)
    monkeypatch.setattr(plan_cli, "policy_config_path", lambda stack: str(path))
    assert plan_cli.main(["--stack", "dev"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and "dev.json" in err, err


def test_every_bad_property_of_a_policy_config_is_a_line_of_its_own(tmp_path, monkeypatch, capsys):
    path = tmp_path / "dev.json"
    path.write_text('{"monthly-budget": {"maxMonthlyUsd": -1}, "required-tags": {"tags": "team"}}')
    monkeypatch.setattr(plan_cli, "policy_config_path", lambda stack: str(path))
    assert plan_cli.main(["--stack", "dev"]) == 1
    captured = capsys.readouterr()
    errors = captured.err.strip().splitlines()
    assert [e.split(": ", 3)[-1] for e in errors] == [
        "monthly-budget.maxMonthlyUsd must be at least 0; got -1",
        "required-tags.tags must be of type array; got 'team' (str)",
    ]
    assert all(e.startswith("error: stack dev: ") for e in errors) and "Plan for stack" not in captured.out


def test_an_unwritable_json_path_fails_before_planning(tmp_path, capsys):
    target = tmp_path / "missing-dir" / "plan.json"
    assert plan_cli.main(["--stack", "dev", "--json", str(target)]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().startswith(f"error: --json {target}: cannot write it")
    assert "Plan for stack" not in captured.out


def test_the_plan_says_what_awsx_creates_out_of_its_sight(dev, prod, variant):
    vpc = lambda plan: plan.one("awsx:ec2:Vpc")  # noqa: E731
    assert "4 subnets" in plan_cli.awsx_children(vpc(dev)) and "1 NAT gateway(s)" in plan_cli.awsx_children(vpc(dev))
    assert "6 subnets" in plan_cli.awsx_children(vpc(prod)) and "3 NAT gateway(s)" in plan_cli.awsx_children(vpc(prod))
    assert "0 NAT gateway(s)" in plan_cli.awsx_children(vpc(variant))


def test_a_single_failing_stack_still_gets_its_summary_line(monkeypatch, capsys):
    monkeypatch.setattr(
        plan_cli.program,
        "load_stack_config",
        lambda stack, root=None: ({"aws:region": "us-east-1", "cicd:service": '{"cpu": 300}'}, []),
    )
    assert plan_cli.main(["--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert "Summary:" in out and "  dev: FAILED: Pulumi.dev.yaml:9: cicd:service.cpu must be one of 256" in out


@pytest.mark.parametrize(
    "deployment",
    [{"strategy": "LINEAR", "linearStepPercent": 3}, {"strategy": "CANARY", "canaryPercent": 0.1}],
    ids=["linear-3", "canary-0.1"],
)
def test_the_smallest_steps_config_accepts_pass_the_policy_pack(deployment, policy_server):
    from conftest import run_plan

    plan = run_plan("dev", **{"cicd:deployment": deployment})
    result = analyzer.run_pack(POLICY_DIR, plan.registrations, policy_config=policy_config("dev"), server=policy_server)
    assert [f for f in result.findings if f.policy == "ecs-blue-green-wiring"] == []
    assert result.mandatory == []


# -- the release record ------------------------------------------------------------------------------

RELEASED = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev@sha256:" + "b" * 64


def _record(image, commit="0123456789abcdef0123456789abcdef01234567"):
    return json.dumps({"image": image, "commit": commit, "environment": "dev"})


def test_a_released_stack_deploys_its_release_record_and_never_builds():
    from offline import program

    result = program.run("dev", parameters={"/cicd/web/dev/release": _record(RELEASED)})
    assert result.outputs["imageRef"] == RELEASED and result.outputs["imageSource"] == "release record of dev"
    assert not result.of_type("docker:index/image:Image")
    (task,) = result.of_type("aws:ecs/taskDefinition:TaskDefinition")
    assert json.loads(task.inputs["containerDefinitions"])[0]["image"] == RELEASED


def test_prod_runs_its_own_release_and_before_its_first_the_newest_dev_release():
    from offline import program

    own = RELEASED.replace("b" * 64, "c" * 64)
    both = {"/cicd/web/dev/release": _record(RELEASED), "/cicd/web/prod/release": _record(own)}
    assert program.run("prod", parameters=both).outputs["imageRef"] == own
    first = program.run("prod", parameters={"/cicd/web/dev/release": _record(RELEASED)})
    assert first.outputs["imageRef"] == RELEASED and first.outputs["releaseRole"] == "promotes from dev"
    # prod pulls dev's image: its execution role may read dev's repository and decrypt dev's key.
    policy = json.loads(
        next(r for r in first.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "service-execution-policy").inputs[
            "policy"
        ]
    )
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert "arn:aws:ecr:us-east-1:123456789012:repository/web-dev" in statements["EcrPull"]["Resource"]
    # ECR decrypts the layers through its own grant on dev's key: the puller needs no key permission.
    assert "alias/web-dev-data" not in json.dumps(policy)


def test_prod_without_any_release_is_refused_before_anything_is_registered():
    import config as cfg
    from offline import program

    with pytest.raises(cfg.ConfigError, match="dev has recorded no release yet"):
        program.run("prod", parameters={})


def test_the_offline_plan_stands_in_a_dev_release_for_prod_and_says_so(policy_server):
    data = plan_cli.plan("prod", server=policy_server)
    assert data["outputs"]["imageSource"] == "release record of dev"
    (record,) = data["standInReleases"].values()
    assert record["image"].endswith("/web-dev@sha256:" + "0" * 64)
    assert "Release record stood in" in plan_cli.render(data)


def test_a_broken_release_record_is_named_not_deployed():
    from offline import program

    with pytest.raises(ValueError, match="the release record /cicd/web/dev/release is not the JSON"):
        program.run("dev", parameters={"/cicd/web/dev/release": "not json"})
    with pytest.raises(ValueError, match="names no image digest"):
        program.run("dev", parameters={"/cicd/web/dev/release": json.dumps({"image": "web:latest"})})


def test_a_policy_pack_that_cannot_start_is_one_line_naming_why(tmp_path, capsys, monkeypatch):
    import shutil

    pack = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, pack, ignore=shutil.ignore_patterns("__pycache__"))
    (pack / "policies" / "tags.py").write_text("def (\n")
    monkeypatch.setattr(plan_cli, "POLICY_DIR", str(pack))
    assert plan_cli.main(["--stack", "dev"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the policy pack in ") and "SyntaxError" in err[0]


def test_a_check_a_first_preview_cannot_run_is_no_violation_whatever_its_level():
    """The policy SDK reports such a check as a diagnostic; `pulumi preview` does not fail on it."""
    finding = analyzer.Finding(
        policy="ecs-blue-green-wiring",
        level="mandatory",
        severity="high",
        message="can't run policy 'ecs-blue-green-wiring' during preview: string value at .arn can't be known",
        urn="",
    )
    result = analyzer.AnalyzerResult(pack="cicd-security", version="1", policies=[], findings=[finding])
    assert result.mandatory == [] and result.violations == [] and result.not_run == [finding]


def test_a_snapshot_compares_equal_to_itself_and_names_what_changed():
    from offline import snapshot

    recorded = snapshot.take(runs=(("dev", False),))
    assert snapshot.compare(recorded) == []
    dashboard = next(
        u for u, r in recorded["dev"]["registrations"].items() if r["type"] == "aws:cloudwatch/dashboard:Dashboard"
    )
    recorded["dev"]["registrations"][dashboard]["inputs"]["dashboardName"] = "other"
    del recorded["dev"]["registrations"][
        next(u for u in recorded["dev"]["registrations"] if u.endswith("::service-alb"))
    ]
    problems = snapshot.compare(recorded)
    assert "dev: monitoring-dashboard: inputs not as recorded" in problems
    assert any(p.startswith("dev: new resource ") and p.endswith("::service-alb") for p in problems)


def test_json_carries_a_failed_stack_with_its_errors(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(
        plan_cli.program,
        "load_stack_config",
        lambda stack, root=None: ({"aws:region": "us-east-1", "cicd:service": '{"cpu": 300}'}, []),
    )
    out = tmp_path / "plan.json"
    assert plan_cli.main(["--stack", "dev", "--json", str(out)]) == 1
    capsys.readouterr()
    data = json.loads(out.read_text())
    assert data["stack"] == "dev" and data["errors"][0].startswith("Pulumi.dev.yaml:9: cicd:service.cpu must be one of")


def test_the_plan_opens_with_what_a_newcomer_needs(policy_server):
    """The stack's role, size, monthly cost and policy verdict before the long tree."""
    data = plan_cli.plan("dev", server=policy_server)
    head = plan_cli.render(data).splitlines()[:6]
    count = sum(data["counts"].values())
    assert head == [
        "Plan for stack dev",
        "  releases:  this stack builds (git -> tests, scans, image -> deploy -> release)",
        f"  resources: {count} to create, in {len(data['counts'])} types",
        "  cost:      $108.38 a month in us-east-1 (budget $150.00)",
        "  policies:  passed: 0 mandatory violation(s), 3 advisory (cicd-security, 57 policies)",
        "",
    ]
    failing = {**data, "mandatoryViolations": 2, "findings": [], "firstPreview": True, "notRun": [{}]}
    assert plan_cli.summary(failing)[-1] == (
        "  policies:  FAILED: 2 mandatory violation(s), 0 advisory (cicd-security, 57 policies); 1 check(s) a first "
        "preview cannot run"
    )


def test_make_bench_reports_each_run_as_it_ends(monkeypatch, capsys):
    """The timing itself is not tested (it lives in the benchmark); that a run shows progress is."""
    from offline import bench

    monkeypatch.setattr(bench.program, "preload", lambda: None)
    monkeypatch.setattr(bench.plan, "plan", lambda stack, **kw: {"counts": {"t": 1}, "mandatoryViolations": 0})
    monkeypatch.setattr(bench.plan, "run_programs", lambda stacks, fp, cb: ([(None, None)] * len(stacks), cb()))
    monkeypatch.setattr(bench.plan, "serve_packs", lambda stacks, cleanup: dict.fromkeys(stacks))
    monkeypatch.setattr(bench.subprocess, "run", lambda *a, **kw: None)

    class Server:
        def __init__(self, *a, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(bench.analyzer, "PolicyServer", Server)
    assert bench.main(["--runs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    progress = [
        line.split(":")[0].strip() for line in out if line.startswith("  warm run") or line.startswith("  cold run")
    ]
    assert progress == ["warm run 1/2", "warm run 2/2", "cold run 1/1"]
    # Before the medians, which come once every run has ended.
    assert max(i for i, line in enumerate(out) if " run " in line) < out.index(
        "offline plan, median of 2 runs (program under mocks + policy pack over gRPC)"
    )


# -- plans that can be compared --------------------------------------------------------------------


def test_registrations_come_in_one_order_whatever_order_the_threads_finish_in(dev):
    import random

    from offline import program

    registrations = {r.urn: r for r in dev.registrations}
    shuffled = list(registrations.items())
    random.Random(7).shuffle(shuffled)
    ordered = program.canonical_order(dict(shuffled))
    assert list(ordered) == list(program.canonical_order(registrations))
    assert len(ordered) == len(registrations)
    position = {urn: i for i, urn in enumerate(ordered)}
    # Parents before their children, siblings by name.
    assert all(position[r.parent] < position[r.urn] for r in ordered.values() if r.parent in position)
    top = [r.name for r in ordered.values() if r.parent not in position]
    assert top == sorted(top)


def test_a_program_run_closes_every_event_loop_it_made():
    """An event loop left open is finalized at exit in any order, and then fails with a traceback."""
    import asyncio
    import gc

    from offline import program

    def open_loops():
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed())

    before = open_loops()
    program.run("dev")
    assert open_loops() <= before


def test_two_plans_of_the_same_stack_print_the_same(policy_server, prod):
    first = plan_cli.render(plan_cli.plan("prod", server=policy_server, result=prod.result))
    assert plan_cli.render(plan_cli.plan("prod", server=policy_server)) == first  # a run of its own


def test_json_carries_each_resources_inputs_with_secrets_masked(policy_server):
    data = plan_cli.plan("dev", server=policy_server)
    version = next(r for r in data["resources"] if r["type"] == "aws:secretsmanager/secretVersion:SecretVersion")
    assert version["inputs"]["secretString"] == "[secret]"
    repository = next(r for r in data["resources"] if r["type"] == "aws:ecr/repository:Repository")
    assert repository["inputs"]["imageTagMutability"] == "IMMUTABLE"
    json.dumps(data["resources"])  # plain JSON throughout


def test_the_diff_names_what_an_edit_added_removed_and_changed():
    def res(name, typ="aws:s3/bucket:Bucket", **inputs):
        return {"urn": f"urn:{name}", "name": name, "type": typ, "inputs": inputs, "protect": False}

    old = [{"stack": "dev", "resources": [res("a", x=1), res("b"), res("c", y=[1])]}, {"stack": "prod"}]
    new = [
        {"stack": "dev", "resources": [res("a", x=2), res("c", y=[1]), res("d")]},
        {"stack": "staging", "resources": []},
    ]
    new[0]["resources"][1]["protect"] = True
    assert plan_cli.changes(old, new) == [
        "  dev: 1 to add, 1 to remove, 2 changed",
        "    + d  aws:s3/bucket:Bucket",
        "    - b  aws:s3/bucket:Bucket",
        "    ~ a  aws:s3/bucket:Bucket: x",
        "    ~ c  aws:s3/bucket:Bucket: (protect)",
        "  staging: not in the old plan",
    ]
    same = [{"stack": "dev", "resources": [res("a")]}]
    assert plan_cli.changes(same, same) == ["  dev: 0 to add, 0 to remove, 0 changed (no change)"]


def test_make_plan_diff_compares_with_an_earlier_json_plan(tmp_path, capsys, monkeypatch, prod):
    monkeypatch.setattr(plan_cli, "run_programs", lambda stacks, fp, cb: ([(prod.result, None)], cb()))
    old = tmp_path / "old.json"
    assert plan_cli.main(["--stack", "prod", "--json", str(old)]) == 0
    document = json.loads(old.read_text())
    document["resources"] = [r for r in document["resources"] if r["name"] != "pipeline-choose"]
    old.write_text(json.dumps(document))
    capsys.readouterr()
    assert plan_cli.main(["--stack", "prod", "--diff", str(old)]) == 0
    out = capsys.readouterr().out
    assert (
        f"Changes against {old}:\n  prod: 1 to add, 0 to remove, 0 changed\n    + pipeline-choose  aws:codebuild/pro"
        in out
    )
    (tmp_path / "bad.json").write_text("{")
    assert plan_cli.main(["--stack", "prod", "--diff", str(tmp_path / "bad.json")]) == 1
    assert f"error: --diff {tmp_path / 'bad.json'}: not a plan written with --json" in capsys.readouterr().err


# -- the plan's verdict with a violation present ------------------------------------------------------


@pytest.fixture
def dev_verdict(tmp_path, monkeypatch, capsys, dev, policy_server):
    """_verdict on the session's dev run and policy pack (the plan re-configures the pack each time)."""
    monkeypatch.setattr(plan_cli, "serve_packs", lambda stacks, cleanup: dict.fromkeys(stacks, policy_server))
    yield lambda config: _verdict(tmp_path, monkeypatch, capsys, dev.result, config)
    policy_server.configure({})


def _verdict(tmp_path, monkeypatch, capsys, result, config):
    """The plan of dev (which serves plain HTTP: lb-http-redirects-to-https and lb-deletion-protection
    fail unless relaxed) with `config` as its policy pack config: (exit code, {policy: level})."""
    import re

    path = tmp_path / "dev.json"
    path.write_text(json.dumps(config))
    monkeypatch.setattr(plan_cli, "policy_config_path", lambda stack: str(path))
    monkeypatch.setattr(plan_cli, "run_programs", lambda stacks, fp, cb: ([(result, None)], cb()))
    code = plan_cli.main(["--stack", "dev"])
    out = capsys.readouterr().out
    return code, {policy: level for level, policy in re.findall(r"^  \[(mandatory|advisory)\] ([\w-]+) ", out, re.M)}


def test_a_mandatory_violation_fails_the_plan_and_an_advisory_one_does_not(dev_verdict):
    code, levels = dev_verdict({})
    assert code == 1 and levels["lb-http-redirects-to-https"] == "mandatory"
    relaxed = {"lb-http-redirects-to-https": "advisory", "lb-deletion-protection": "advisory"}
    code, levels = dev_verdict(relaxed)
    assert code == 0 and levels["lb-http-redirects-to-https"] == "advisory"
    # An object without a level keeps the policy's own level (mandatory), as the CLI does.
    kept = {"lb-http-redirects-to-https": {}, "lb-deletion-protection": "advisory"}
    code, levels = dev_verdict(kept)
    assert code == 1 and levels["lb-http-redirects-to-https"] == "mandatory"
    disabled = {"lb-http-redirects-to-https": "disabled", "lb-deletion-protection": {"enforcementLevel": "disabled"}}
    code, levels = dev_verdict(disabled)
    assert code == 0 and "lb-http-redirects-to-https" not in levels and "lb-deletion-protection" not in levels


def test_all_sets_every_policys_level_and_a_policys_own_entry_overrides_it(dev_verdict):
    code, levels = dev_verdict({"all": "advisory"})
    assert code == 0 and set(levels.values()) == {"advisory"} and "lb-http-redirects-to-https" in levels
    code, levels = dev_verdict({"all": {"enforcementLevel": "advisory"}, "lb-deletion-protection": "mandatory"})
    assert (
        code == 1
        and levels["lb-deletion-protection"] == "mandatory"
        and levels["lb-http-redirects-to-https"] == "advisory"
    )
    # An advisory policy (ecs-non-root-user is advisory by default) becomes mandatory under all: mandatory.
    code, levels = dev_verdict({"all": "mandatory"})
    assert code == 1 and set(levels.values()) == {"mandatory"}


def test_all_takes_only_a_level(tmp_path, monkeypatch, capsys):
    path = tmp_path / "dev.json"
    path.write_text('{"all": {"enforcementLevel": "advisory", "maxMonthlyUsd": 5}}')
    monkeypatch.setattr(plan_cli, "policy_config_path", lambda stack: str(path))
    assert plan_cli.main(["--stack", "dev"]) == 1
    assert "all sets only an enforcementLevel; got enforcementLevel, maxMonthlyUsd" in capsys.readouterr().err


def test_a_first_preview_passes_with_checks_it_cannot_run_and_names_them(monkeypatch, capsys):
    """A check that cannot run yet is reported, never counted as a violation or a pass."""
    import dataclasses

    from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

    from offline import program

    result = program.run("prod", first_preview=True)
    (task,) = [r for r in result.registrations.values() if r.type == "aws:ecs/taskDefinition:TaskDefinition"]
    unknown = type(task.object)()
    unknown.CopyFrom(task.object)
    unknown["containerDefinitions"] = UNKNOWN_STRING_VALUE
    result.registrations[task.urn] = dataclasses.replace(task, object=unknown)
    monkeypatch.setattr(plan_cli, "run_programs", lambda stacks, fp, cb: ([(result, None)], cb()))
    assert plan_cli.main(["--stack", "prod", "--first-preview"]) == 0
    out = capsys.readouterr().out
    count = int(re.search(r"Checks a first preview cannot run: (\d+)", out).group(1))
    assert count >= 4  # the container checks, privileged to plaintext secrets
    assert "ecs-no-privileged-containers: " in out and "Policy check passed: 0 mandatory violation(s)" in out
    assert f"; {count} check(s) a first preview cannot run" in out.splitlines()[4]


def test_a_secret_stack_output_is_never_printed_in_the_plan():
    """The plan's output is posted as a pull-request comment: a secret output shows as [secret]."""
    import pulumi

    from offline import program

    def build():
        pulumi.export("token", pulumi.Output.secret("s3cr3t-value"))
        pulumi.export("plain", "visible")

    _, outputs = program.record(build)
    assert outputs == {"token": program.SECRET_PLACEHOLDER, "plain": "visible"}
    assert "s3cr3t-value" not in json.dumps(outputs)


def test_a_policy_config_value_at_its_schemas_minimum_is_accepted_and_one_below_refused():
    from offline import analyzer

    schema = {"type": "integer", "minimum": 1}
    assert analyzer.schema_errors("p.x", 1, schema) == []
    assert analyzer.schema_errors("p.x", 0, schema) == ["p.x must be at least 1; got 0"]
    top = {"type": "number", "maximum": 10}
    assert analyzer.schema_errors("p.y", 10, top) == []
    assert analyzer.schema_errors("p.y", 10.5, top) == ["p.y must be at most 10; got 10.5"]
    # The budget's minimum is 0: a budget of nothing is a budget (every cost is over it).
    assert analyzer.schema_errors("monthly-budget.maxMonthlyUsd", 0, {"type": "number", "minimum": 0}) == []


def test_mock_secret_arns_carry_the_six_characters_secrets_manager_appends(dev):
    """A grant on the bare name (no -??????) would pass offline and fail on AWS, unless the mocks answer
    as Secrets Manager does."""
    secrets = dev.all("aws:secretsmanager/secret:Secret")
    for secret in secrets:
        name = secret.inputs["name"]
        assert re.fullmatch(
            rf"arn:aws:secretsmanager:us-east-1:123456789012:secret:{re.escape(name)}-[0-9a-zA-Z]{{6}}",
            secret.outputs["arn"],
        )
