"""The source repository, the build pipeline, the buildspecs and the PR preview wiring."""

import json
import os
import re

import pytest
import yaml
from conftest import ROOT, run_plan

BUILDSPECS = os.path.join(ROOT, "buildspecs")


def stages(plan):
    return plan.one("aws:codepipeline/pipeline:Pipeline").inputs["stages"]


def buildspec(name):
    with open(os.path.join(BUILDSPECS, name), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def commands(spec):
    return [c for phase in spec["phases"].values() for c in phase.get("commands", [])]


# -- repository -----------------------------------------------------------------------------------


def test_codecommit_repository_is_encrypted_and_needs_an_approval(dev):
    repo = dev.one("aws:codecommit/repository:Repository").inputs
    assert repo["repositoryName"] == "web"
    assert repo["kmsKeyId"].startswith("arn:aws:kms:")
    template = dev.one("aws:codecommit/approvalRuleTemplate:ApprovalRuleTemplate").inputs
    content = json.loads(template["content"])
    assert content["DestinationReferences"] == ["refs/heads/main"]
    assert content["Statements"][0]["NumberOfApprovalsNeeded"] == 1
    association = dev.one("aws:codecommit/approvalRuleTemplateAssociation:ApprovalRuleTemplateAssociation")
    assert association.inputs["repositoryName"] == "web"
    assert association.inputs["approvalRuleTemplateName"] == template["name"]


def test_pull_request_events_reach_the_topic(dev):
    rule = dev.one("aws:codestarnotifications/notificationRule:NotificationRule", "source-pr-notifications").inputs
    assert sorted(rule["eventTypeIds"]) == [
        "codecommit-repository-pull-request-created",
        "codecommit-repository-pull-request-merged",
        "codecommit-repository-pull-request-source-updated",
        "codecommit-repository-pull-request-status-changed",
    ]
    assert rule["targets"][0]["address"].endswith(":web-dev-alerts")


# -- pipeline -------------------------------------------------------------------------------------


def test_dev_builds_deploys_and_records_the_release(dev):
    assert [s["name"] for s in stages(dev)] == ["Source", "TestAndScan", "Image", "Deploy", "Release"]
    record = stages(dev)[4]["actions"][0]
    assert record["configuration"]["ProjectName"] == "web-dev-release"
    variables = {v["name"]: v["value"] for v in json.loads(record["configuration"]["EnvironmentVariables"])}
    assert variables == {
        "IMAGE_URI": "#{ImageVariables.IMAGE_URI}",
        "GIT_SHA": "#{SourceVariables.CommitId}",
        "COMMITTED_AT": "#{SourceVariables.CommitterDate}",
        "EXECUTION_ID": "#{codepipeline.PipelineExecutionId}",
    }


def test_a_building_pipeline_with_approval_asks_before_deploy(variant):
    names = [s["name"] for s in stages(variant)]
    assert names == ["Source", "TestAndScan", "Image", "Approval", "Deploy", "Release"]
    approval = stages(variant)[3]["actions"][0]
    assert (approval["category"], approval["provider"]) == ("Approval", "Manual")
    assert approval["configuration"]["NotificationArn"].endswith(":web-dev-alerts")


def test_prod_promotes_dev_releases_and_never_builds(prod):
    names = [s["name"] for s in stages(prod)]
    assert names == ["Source", "Approval", "Deploy", "Release"]
    source = stages(prod)[0]["actions"][0]
    assert (source["provider"], source["configuration"]["S3ObjectKey"]) == ("S3", "dev/latest.zip")
    assert source["configuration"]["S3Bucket"] == "web-dev-releases-123456789012"
    assert source["configuration"]["PollForSourceChanges"] == "false"
    choose, approval = stages(prod)[1]["actions"]
    assert (choose["name"], choose["runOrder"], approval["runOrder"]) == ("ChooseRelease", 1, 2)
    assert approval["configuration"]["NotificationArn"].endswith(":web-prd-alerts")
    deploy = stages(prod)[2]["actions"][0]
    assert deploy["namespace"] == "DeployVariables"
    # The deploy takes exactly the commit that was approved, not "latest" again.
    assert {v["name"]: v["value"] for v in json.loads(deploy["configuration"]["EnvironmentVariables"])}[
        "RELEASE"
    ] == "#{ChosenRelease.RELEASE_COMMIT}"
    record = stages(prod)[3]["actions"][0]
    assert "#{DeployVariables.DEPLOYED_COMMIT}" in record["configuration"]["EnvironmentVariables"]
    pipeline = prod.one("aws:codepipeline/pipeline:Pipeline").inputs
    assert pipeline["variables"] == [
        {"name": "RELEASE", "defaultValue": "latest", "description": "the commit of the release to deploy"}
    ]
    assert not [r for r in prod.registrations if r.type.startswith(("aws:codecommit", "aws:ecr/repository:"))]
    assert sorted(p.inputs["name"] for p in prod.all("aws:codebuild/project:Project")) == [
        "web-prd-choose",
        "web-prd-deploy",
        "web-prd-drift",
        "web-prd-release",
    ]


def test_the_approver_sees_the_commit_image_and_bundle_of_the_release_they_approve(prod):
    """A rollback (RELEASE=<sha>) and `latest` alike: the choose job verifies the release first and
    exports what the question shows."""
    choose, approval = stages(prod)[1]["actions"]
    assert choose["namespace"] == "ChosenRelease" and choose["configuration"]["ProjectName"] == "web-prd-choose"
    assert {v["name"]: v["value"] for v in json.loads(choose["configuration"]["EnvironmentVariables"])} == {
        "RELEASE": "#{variables.RELEASE}"
    }
    question = approval["configuration"]["CustomData"]
    for shown in ("#{ChosenRelease.RELEASE_COMMIT}", "#{ChosenRelease.RELEASE_IMAGE}"):
        assert shown in question
    assert "#{ChosenRelease.RELEASE_BUNDLE_SHA256}" in question and "RELEASE=#{variables.RELEASE}" in question
    assert len(question) <= 1000  # CodePipeline's limit on a configuration value
    with open(os.path.join(ROOT, "buildspecs", "choose-release.yml"), encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    assert spec["env"]["exported-variables"] == ["RELEASE_COMMIT", "RELEASE_IMAGE", "RELEASE_BUNDLE_SHA256"]
    # It reads dev's releases as the deploy does, and nothing else: no deploy role, no Pulumi.
    sids = sorted(s["Sid"] for s in _statements(prod, "choose"))
    assert sids == ["Artifacts", "DataKey", "Logs", "UpstreamBundles", "UpstreamKey", "UpstreamReleases"]


def test_without_an_approval_there_is_no_choose_job_and_the_deploy_takes_the_variable():
    plan = run_plan("prod", **{"cicd:pipeline": {"requireApproval": False}})
    assert [s["name"] for s in stages(plan)] == ["Source", "Deploy", "Release"]
    deploy = stages(plan)[1]["actions"][0]
    assert "#{variables.RELEASE}" in deploy["configuration"]["EnvironmentVariables"]
    assert "web-prd-choose" not in {p.inputs["name"] for p in plan.all("aws:codebuild/project:Project")}


def test_a_release_of_dev_starts_the_prod_pipeline(prod, dev):
    """S3's event (at least once) of the bundle dev writes after its record, not Parameter Store's
    change event, which AWS sends on a best effort basis."""
    rule = prod.one("aws:cloudwatch/eventRule:EventRule", "pipeline-on-release").inputs
    assert json.loads(rule["eventPattern"]) == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["web-dev-releases-123456789012"]}, "object": {"key": ["dev/latest.zip"]}},
    }
    # dev's bucket sends its events to EventBridge (prod's bucket has no upstream copies to announce).
    assert dev.named("pipeline-releases-events").inputs == {
        "bucket": "web-dev-releases-123456789012",
        "eventbridge": True,
    }
    assert not [r for r in prod.registrations if r.type == "aws:s3/bucketNotification:BucketNotification"]
    policy = json.loads(prod.one("aws:iam/rolePolicy:RolePolicy", "pipeline-on-release-events-policy").inputs["policy"])
    assert policy["Statement"] == [
        {
            "Sid": "Start",
            "Effect": "Allow",
            "Action": "codepipeline:StartPipelineExecution",
            "Resource": "arn:aws:codepipeline:us-east-1:123456789012:web-prd",
        }
    ]


def test_pipeline_is_v2_queued_and_encrypted(prod, dev):
    pipeline = prod.one("aws:codepipeline/pipeline:Pipeline").inputs
    assert pipeline["pipelineType"] == "V2"
    # dev releases every push in order; prod deploys the newest release (a newer one replaces one
    # still waiting for approval).
    assert dev.one("aws:codepipeline/pipeline:Pipeline").inputs["executionMode"] == "QUEUED"
    assert pipeline["executionMode"] == "SUPERSEDED"
    store = pipeline["artifactStores"][0]
    assert store["encryptionKey"]["type"] == "KMS"
    assert store["location"].startswith("web-prd-artifacts-")


def test_scans_run_in_parallel_in_one_stage(dev):
    scan = stages(dev)[1]
    assert [a["name"] for a in scan["actions"]] == ["UnitTests", "SonarQube", "Trivy"]
    assert {a["runOrder"] for a in scan["actions"]} == {1}
    assert {a["configuration"]["ProjectName"] for a in scan["actions"]} == {
        "web-dev-unit-tests",
        "web-dev-sonarqube",
        "web-dev-trivy",
    }


def test_image_digest_flows_from_image_to_deploy(dev):
    image = stages(dev)[2]["actions"][0]
    deploy = stages(dev)[-1]["actions"][0]
    assert image["namespace"] == "ImageVariables"
    env = {v["name"]: v["value"] for v in json.loads(deploy["configuration"]["EnvironmentVariables"])}
    assert env["IMAGE_URI"] == "#{ImageVariables.IMAGE_URI}"
    assert env["GIT_SHA"] == "#{SourceVariables.CommitId}"


def test_codecommit_push_to_branch_starts_the_pipeline(dev):
    rules = {r.inputs["name"]: r.inputs for r in dev.all("aws:cloudwatch/eventRule:EventRule")}
    pattern = json.loads(rules["web-dev-on-push"]["eventPattern"])
    assert pattern["detail"]["referenceName"] == ["main"]
    # A push to an existing branch is referenceUpdated; the first push creates it.
    assert pattern["detail"]["event"] == ["referenceCreated", "referenceUpdated"]
    assert pattern["detail"]["referenceType"] == ["branch"]
    assert pattern["resources"] == ["arn:aws:codecommit:us-east-1:123456789012:web"]
    targets = [t.inputs for t in dev.all("aws:cloudwatch/eventTarget:EventTarget")]
    assert any(t["arn"] == "arn:aws:codepipeline:us-east-1:123456789012:web-dev" for t in targets)
    for target in targets:
        assert target["retryPolicy"]["maximumRetryAttempts"] > 0


def test_pull_requests_start_the_preview_on_their_source_commit(dev):
    rules = {r.inputs["name"]: r.inputs for r in dev.all("aws:cloudwatch/eventRule:EventRule")}
    pattern = json.loads(rules["web-dev-on-pull-request"]["eventPattern"])
    assert pattern["detail"]["event"] == ["pullRequestCreated", "pullRequestSourceBranchUpdated"]
    assert pattern["detail"]["destinationReference"] == ["refs/heads/main"]
    assert pattern["detail"]["pullRequestStatus"] == ["Open"]  # a closed PR's source update previews nothing
    target = [
        t.inputs
        for t in dev.all("aws:cloudwatch/eventTarget:EventTarget")
        if t.inputs["arn"].endswith(":project/web-dev-preview")
    ][0]
    transformer = target["inputTransformer"]
    assert transformer["inputPaths"]["source"] == "$.detail.sourceCommit"
    template = (
        transformer["inputTemplate"]
        .replace("<source>", '"abc"')
        .replace("<pr>", '"7"')
        .replace("<destination>", '"def"')
    )
    rendered = json.loads(template)
    assert rendered["sourceVersion"] == "abc"
    assert {v["name"] for v in rendered["environmentVariablesOverride"]} == {
        "PR_ID",
        "SOURCE_COMMIT",
        "DESTINATION_COMMIT",
    }
    preview = [p.inputs for p in dev.all("aws:codebuild/project:Project") if p.inputs["name"] == "web-dev-preview"][0]
    assert preview["source"]["type"] == "CODECOMMIT"
    assert preview["source"]["buildspec"] == "buildspecs/preview.yml"


def test_github_source_uses_the_connection_and_a_v2_trigger(variant):
    plan = variant
    source = stages(plan)[0]["actions"][0]
    assert source["provider"] == "CodeStarSourceConnection"
    assert source["configuration"]["FullRepositoryId"] == "acme/web"
    pipeline = plan.one("aws:codepipeline/pipeline:Pipeline").inputs
    assert pipeline["triggers"][0]["gitConfiguration"]["pushes"][0]["branches"]["includes"] == ["main"]
    assert not [r for r in plan.registrations if r.type == "aws:codecommit/repository:Repository"]
    rules = [r.inputs["name"] for r in plan.all("aws:cloudwatch/eventRule:EventRule")]
    assert "web-dev-on-push" not in rules and "web-dev-on-pull-request" not in rules
    drift = [p.inputs for p in plan.all("aws:codebuild/project:Project") if p.inputs["name"] == "web-dev-drift"][0]
    assert drift["source"]["type"] == "GITHUB"
    assert drift["source"]["auth"]["type"] == "CODECONNECTIONS"


# -- projects -------------------------------------------------------------------------------------


def test_every_project_logs_encrypts_and_caches(dev):
    projects = {p.inputs["name"]: p.inputs for p in dev.all("aws:codebuild/project:Project")}
    assert sorted(projects) == [
        "web-dev-deploy",
        "web-dev-drift",
        "web-dev-image",
        "web-dev-preview",
        "web-dev-release",
        "web-dev-sonarqube",
        "web-dev-trivy",
        "web-dev-unit-tests",
    ]
    for name, project in projects.items():
        assert project["logsConfig"]["cloudwatchLogs"]["status"] == "ENABLED"
        assert project["logsConfig"]["cloudwatchLogs"]["groupName"] == f"/aws/codebuild/{name}"
        assert project["encryptionKey"].startswith("arn:aws:kms:")
        assert project["cache"]["type"] == "LOCAL"
        assert {"LOCAL_SOURCE_CACHE", "LOCAL_CUSTOM_CACHE"} <= set(project["cache"]["modes"])
        # Docker layers are cached where Docker runs: the image project only.
        assert ("LOCAL_DOCKER_LAYER_CACHE" in project["cache"]["modes"]) is (name == "web-dev-image")
        assert project["environment"]["privilegedMode"] is (name == "web-dev-image")
        assert os.path.exists(os.path.join(ROOT, project["source"]["buildspec"]))
        for variable in project["environment"].get("environmentVariables", []):
            assert (
                not re.search(r"(TOKEN|SECRET|PASSWORD)", variable["name"]) or variable["type"] == "SECRETS_MANAGER"
            ), variable


def test_sonar_token_comes_from_secrets_manager(dev):
    sonar = [p.inputs for p in dev.all("aws:codebuild/project:Project") if p.inputs["name"] == "web-dev-sonarqube"][0]
    variables = {v["name"]: v for v in sonar["environment"]["environmentVariables"]}
    assert variables["SONAR_TOKEN"] == {
        "name": "SONAR_TOKEN",
        "value": "web-dev/sonar-token",
        "type": "SECRETS_MANAGER",
    }


def test_each_project_has_its_own_role(dev):
    roles = [p.inputs["serviceRole"] for p in dev.all("aws:codebuild/project:Project")]
    assert len(set(roles)) == len(roles) == 8


def test_only_the_image_project_may_push_and_only_pulumi_jobs_assume_the_deploy_role(dev):
    documents = {r.name: json.loads(r.inputs["policy"]) for r in dev.all("aws:iam/rolePolicy:RolePolicy")}
    pushers = {n: s for n, d in documents.items() for s in d["Statement"] if "ecr:PutImage" in json.dumps(s)}
    assert sorted(pushers) == ["pipeline-image-policy", "pipeline-release-policy"]
    # The release job only adds the release tag to an image it reads back (ECR has no other tagging API).
    assert pushers["pipeline-release-policy"] == {
        "Sid": "TagReleasedImage",
        "Effect": "Allow",
        "Action": ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:PutImage"],
        "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/web-dev",
    }
    assumers = [n for n, d in documents.items() if "cicd-deployer" in json.dumps(d)]
    assert sorted(assumers) == ["pipeline-deploy-policy", "pipeline-drift-policy"]


UPSTREAM_READS = {"UpstreamReleases", "UpstreamBundles", "Source", "SourceBucket", "EcrPull"}


def test_policy_resources_are_scoped_to_this_stack(dev, prod):
    for plan, prefix, env in ((dev, "web-dev", "dev"), (prod, "web-prd", "prod")):
        for policy in plan.all("aws:iam/rolePolicy:RolePolicy"):
            for statement in json.loads(policy.inputs["policy"])["Statement"]:
                # A promoting stack reads (only reads) its upstream's releases, bundles and images.
                upstream = env == "prod" and statement.get("Sid") in UPSTREAM_READS
                resources = (
                    statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                )
                for resource in resources:
                    if resource == "*" or resource.endswith(":key/*"):
                        continue
                    scoped = (
                        prefix in resource
                        or f"/web/{env}/" in resource
                        or (upstream and ("web-dev" in resource or "/web/dev/" in resource))
                        or resource.endswith(":web")
                        or "cicd-deployer" in resource
                        or resource.startswith("arn:aws:logs:")
                    )
                    assert scoped, f"{policy.name}: {resource}"


def test_every_star_resource_is_commented_in_the_source():
    """Each `"Resource": "*"` in the components sits under a comment that says why AWS requires it."""
    found = 0
    for name in os.listdir(os.path.join(ROOT, "components")):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(ROOT, "components", name), encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        for i, line in enumerate(lines):
            if re.search(r'"Resource": "\*"', line):
                found += 1
                window = "\n".join(lines[max(0, i - 6) : i + 1])
                assert re.search(r"#.*(requires|required|means this key)", window), f"{name}:{i + 1}"
    assert found >= 5


# -- buildspecs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["unit-tests.yml", "sonarqube.yml", "trivy.yml", "image.yml", "deploy.yml", "preview.yml"]
)
def test_buildspecs_are_version_0_2(name):
    spec = buildspec(name)
    assert spec["version"] == 0.2
    assert commands(spec)


def test_unit_tests_publish_a_junit_report():
    spec = buildspec("unit-tests.yml")
    assert any("--junitxml=reports/junit.xml" in c for c in commands(spec))
    assert spec["reports"]["unit-tests"]["file-format"] == "JUNITXML"


def test_sonarqube_waits_for_the_quality_gate():
    joined = " ".join(commands(buildspec("sonarqube.yml")))
    assert "-Dsonar.qualitygate.wait=true" in joined
    assert '--sonar-host-url="$SONAR_HOST_URL"' in joined


def test_trivy_fails_the_build_at_the_configured_severity():
    trivy = commands(buildspec("trivy.yml"))
    assert any(c.startswith('trivy fs --exit-code 1 --severity "$TRIVY_SEVERITY"') for c in trivy)
    assert any(c.startswith('trivy config --exit-code 1 --severity "$TRIVY_SEVERITY"') for c in trivy)


def test_image_stage_runs_the_build_script_and_exports_the_digest():
    # What the script does (scan before push, re-runs reuse the pushed tag) is run in test_scripts.py.
    spec = buildspec("image.yml")
    build = spec["phases"]["build"]["commands"]
    assert build[0] == "bash buildspecs/scripts/build-image.sh /tmp/image-uri"
    assert build[1] == 'export IMAGE_URI="$(cat /tmp/image-uri)"'
    assert spec["env"]["exported-variables"] == ["IMAGE_URI"]
    assert "post_build" not in spec["phases"]  # post_build runs even after a failed scan


def test_deploy_previews_with_the_policy_pack_before_up():
    build = buildspec("deploy.yml")["phases"]["build"]["commands"]
    preview = next(i for i, c in enumerate(build) if c.startswith("pulumi preview --refresh --policy-pack policy"))
    up = next(i for i, c in enumerate(build) if c.startswith("pulumi up --yes --refresh"))
    assert preview < up
    # Refreshed: after a rolled-back release the state holds the failed task definition, and a retry of
    # the same commit must deploy it again rather than find nothing to do.
    assert "--policy-pack policy" in build[up]
    pre = " ".join(buildspec("deploy.yml")["phases"]["pre_build"]["commands"])
    assert "pulumi config set --path cicd:service.image" in pre
    assert "*@sha256:*" in pre


def test_preview_posts_to_the_pull_request_and_fails_on_violations():
    script = " ".join(commands(buildspec("preview.yml")))
    assert "pulumi preview --policy-pack policy" in script
    assert "make plan" in script
    assert "aws codecommit post-comment-for-pull-request" in script
    assert "exit $status" in script


def test_the_codecommit_preview_comments_the_change_to_the_monthly_cost(dev):
    spec = buildspec("preview.yml")
    script = " ".join(commands(spec))
    diff = script.index('bash buildspecs/scripts/cost-diff.sh "$PULUMI_STACK" "$BASE_BRANCH" /tmp/cost.md')
    assert diff < script.index("--cost /tmp/cost.md") < script.index("post-comment-for-pull-request")
    # The base branch is fetched from CodeCommit with the build's own role.
    assert spec["env"]["git-credential-helper"] is True
    variables = {v["name"]: v["value"] for v in _project(dev, "preview")["environment"]["environmentVariables"]}
    assert variables["BASE_BRANCH"] == "main"


def _workflow():
    with open(os.path.join(ROOT, ".github", "workflows", "preview.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_github_workflow_runs_tests_plan_and_pulumi_preview():
    workflow = _workflow()
    runs = [s.get("run") for s in workflow["jobs"]["test-and-plan"]["steps"]]
    assert "make test" in runs and "make plan STACK=dev,prod" in runs
    assert "make plan STACK=dev,prod ARGS=--first-preview" in runs
    steps = workflow["jobs"]["preview"]["steps"]
    action = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions") and "command" in s["with"]][0]
    assert action["with"]["command"] == "preview"
    assert action["with"]["comment-on-pr"] is True
    assert action["with"]["policyPacks"] == "policy"
    # The preview keeps the running image and never builds one.
    assert workflow["jobs"]["preview"]["env"]["CICD_REQUIRE_IMAGE"] == "1"
    pin = next(i for i, s in enumerate(steps) if "pin-running-image.sh" in str(s.get("run", "")))
    assert pin < steps.index(action)


def test_github_previews_assume_a_role_of_each_stack_and_skip_forks():
    """prod in another account would fail every pull request with dev's role; a fork's pull request
    gets no OIDC token, so its preview could only fail."""
    job = _workflow()["jobs"]["preview"]
    assert job["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    stacks = {entry["stack"]: entry for entry in job["strategy"]["matrix"]["include"]}
    assert sorted(stacks) == ["dev", "prod"]
    assert [stacks[s]["role"] for s in ("dev", "prod")] == ["PREVIEW_ROLE_ARN_DEV", "PREVIEW_ROLE_ARN_PROD"]
    assert [stacks[s]["token"] for s in ("dev", "prod")] == ["PULUMI_PREVIEW_TOKEN_DEV", "PULUMI_PREVIEW_TOKEN_PROD"]
    assert job["env"]["PREVIEW_ROLE_ARN"] == "${{ vars[matrix.role] }}"
    assert job["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets[matrix.token] }}"
    credentials = next(s for s in job["steps"] if "configure-aws-credentials" in str(s.get("uses")))
    assert credentials["with"]["role-to-assume"] == "${{ env.PREVIEW_ROLE_ARN }}"
    assert "PREVIEW_ROLE_ARN }}" not in json.dumps(job).replace("env.PREVIEW_ROLE_ARN }}", "")  # no shared role
    # A stack without a role of its own says so and runs nothing else.
    skipped, *rest = job["steps"]
    assert skipped["if"] == "env.PREVIEW_ROLE_ARN == ''" and "offline plan only" in skipped["run"]
    assert rest and all(step["if"] == "env.PREVIEW_ROLE_ARN != ''" for step in rest)


def test_github_pull_requests_get_their_cost_change_from_a_job_that_runs_none_of_their_code():
    workflow = _workflow()
    plan_job = workflow["jobs"]["test-and-plan"]
    step = next(s for s in plan_job["steps"] if s.get("id") == "cost")
    assert 'cost-diff.sh "$stack" "$BASE_REF" "cost-$stack.md" .base' in step["run"]
    assert plan_job["outputs"]["cost"] == "${{ steps.cost.outputs.comment }}"
    base = next(s for s in plan_job["steps"] if s.get("with", {}).get("path") == ".base")
    # Checked out after the tests and plans, which would otherwise lint and plan it too.
    assert plan_job["steps"].index(base) > max(
        i for i, s in enumerate(plan_job["steps"]) if str(s.get("run", "")).startswith("make ")
    )
    # Even when the tests or a plan failed (a stack over its budget fails the plan).
    assert step["if"] == base["if"] == "${{ !cancelled() }}"
    comment = workflow["jobs"]["cost-comment"]
    assert comment["if"].startswith("${{ !cancelled() && needs.test-and-plan.outputs.cost != ''")
    assert comment["permissions"] == {"pull-requests": "write"}
    assert comment["needs"] == "test-and-plan"
    assert [s.get("uses") for s in comment["steps"]] == [None]  # no checkout, nothing of the PR runs
    assert comment["steps"][0]["run"] == 'gh pr comment "$PR" --repo "$REPO" --body "$BODY"'


def test_github_actions_are_pinned_by_sha_and_jobs_ask_for_their_own_permissions():
    workflow = _workflow()
    assert workflow["permissions"] == {}
    assert workflow["jobs"]["test-and-plan"]["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["preview"]["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
        "id-token": "write",
    }
    with open(os.path.join(ROOT, ".github", "workflows", "preview.yml"), encoding="utf-8") as handle:
        uses = re.findall(r"uses: (\S+)(.*)", handle.read())
    assert len(uses) >= 7
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), (action, comment)


# -- what each job may reach -----------------------------------------------------------------------

PREVIEW_ROLE = "arn:aws:iam::123456789012:role/cicd-preview"


def _project(plan, role):
    return plan.one("aws:codebuild/project:Project", f"pipeline-{role}").inputs


def _statements(plan, role):
    return json.loads(plan.one("aws:iam/rolePolicy:RolePolicy", f"pipeline-{role}-policy").inputs["policy"])[
        "Statement"
    ]


def _variables(plan, role):
    return {v["name"]: v["value"] for v in _project(plan, role)["environment"]["environmentVariables"]}


@pytest.mark.parametrize("preview_role", ["", PREVIEW_ROLE])
def test_pull_request_code_gets_no_credentials_that_can_change_anything(preview_role):
    from conftest import run_plan

    plan = run_plan(
        "dev", **{"cicd:pipeline": {"backendUrl": "https://api.pulumi.com", "previewRoleArn": preview_role}}
    )
    preview = json.dumps(_statements(plan, "preview"))
    variables = _variables(plan, "preview")
    # Never the deploy role, nor the deploy jobs' Pulumi Cloud token.
    assert "cicd-deployer" not in preview and "pulumi-access-token" not in preview
    assert "pulumi-access-token" not in json.dumps(variables)
    actions = sorted(
        a
        for s in _statements(plan, "preview")
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    )
    base = [
        "codecommit:GetPullRequest",
        "codecommit:GitPull",
        "codecommit:PostCommentForPullRequest",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    if preview_role:
        assert actions == sorted(base + ["secretsmanager:GetSecretValue", "sts:AssumeRole"])
        assert variables["PULUMI_ACCESS_TOKEN"] == "web-dev/pulumi-preview-token"
        assert PREVIEW_ROLE in preview and "web-dev/pulumi-preview-token" in preview
    else:
        assert actions == base and "PULUMI_ACCESS_TOKEN" not in variables
        assert not [s for s in plan.all("aws:secretsmanager/secret:Secret") if "preview-token" in s.inputs["name"]]
    # The deploy and drift jobs keep theirs.
    assert _variables(plan, "deploy")["PULUMI_ACCESS_TOKEN"] == "web-dev/pulumi-access-token"


def test_jobs_that_run_the_program_never_build_the_image(dev):
    for role in ("deploy", "drift"):
        assert _variables(dev, role)["CICD_REQUIRE_IMAGE"] == "1"
    # The preview sets it on `pulumi preview` only: the offline plan builds nothing anyway.
    script = " ".join(commands(buildspec("preview.yml")))
    assert "CICD_REQUIRE_IMAGE=1" in script and "pin-running-image.sh" in script
    assert "pin-running-image.sh" in " ".join(commands(buildspec("drift.yml")))


def test_sonarqube_cloud_gets_its_organization(dev):
    assert _variables(dev, "sonarqube")["SONAR_ORGANIZATION"] == "acme"
    joined = " ".join(commands(buildspec("sonarqube.yml")))
    assert "${SONAR_ORGANIZATION:+-Dsonar.organization=$SONAR_ORGANIZATION}" in joined


def test_the_image_job_primes_the_public_image_cache(dev):
    variables = _variables(dev, "image")
    assert variables["XRAY_IMAGE"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev-pub/xray/aws-xray-daemon:3.x"
    )
    (cache,) = [s for s in _statements(dev, "image") if s.get("Sid") == "EcrPullThroughCache"]
    assert cache["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/web-dev-pub/*"
    assert "ecr:BatchImportUpstreamImage" in cache["Action"] and "ecr:PutImage" not in cache["Action"]


def test_resources_that_name_another_depend_on_it(prod):
    """An ARN built from strings hides the order: these take the resource's own output."""
    pipeline = prod.one("aws:codepipeline/pipeline:Pipeline")
    topic = prod.one("aws:sns/topic:Topic")
    notifications = prod.one(
        "aws:codestarnotifications/notificationRule:NotificationRule", "monitoring-pipeline-notifications"
    )
    assert pipeline.urn in notifications.property_dependencies["resource"]
    assert topic.urn in pipeline.property_dependencies["stages"]  # the approval's NotificationArn
    drift = prod.one("aws:cloudwatch/eventTarget:EventTarget", "pipeline-drift-detected-target")
    assert topic.urn in drift.property_dependencies["arn"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_artifact_and_releases_buckets_log_access_to_the_access_log_bucket(stack, request):
    plan = request.getfixturevalue(stack)
    code = {"dev": "dev", "prod": "prd"}[stack]
    logged = {
        r.inputs["bucket"]: r.inputs
        for r in plan.all("aws:s3/bucketLogging:BucketLogging")
        if r.inputs["targetBucket"] == f"web-{code}-alb-logs-123456789012"
    }
    assert sorted(logged) == [f"web-{code}-artifacts-123456789012", f"web-{code}-releases-123456789012"]
    for bucket, logging in logged.items():
        assert logging["targetPrefix"] == f"s3/{bucket}/"
    policy = json.loads(plan.one("aws:s3/bucketPolicy:BucketPolicy", "service-access-logs-policy").inputs["policy"])
    (s3,) = [s for s in policy["Statement"] if s.get("Sid") == "S3DeliversAccessLogs"]
    assert s3["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert s3["Resource"].endswith("/s3/*") and s3["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"


def test_prod_approval_notices_can_use_the_topic_key(prod, dev):
    (key,) = [s for s in _statements(prod, "pipeline") if s.get("Sid") == "ApprovalNoticeKey"]
    assert key["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": "alias/web-prd-telemetry"}
    assert key["Condition"]["StringEquals"] == {"kms:ViaService": "sns.us-east-1.amazonaws.com"}
    assert sorted(key["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert not [s for s in _statements(dev, "pipeline") if s.get("Sid", "").startswith("ApprovalNotice")]


def test_every_project_declares_what_codebuild_adds_so_drift_sees_nothing(dev):
    for project in dev.all("aws:codebuild/project:Project"):
        variables = {v["name"]: v for v in project.inputs["environment"]["environmentVariables"]}
        assert variables["CODEBUILD_CONFIG_AUTO_DISCOVER"] == {
            "name": "CODEBUILD_CONFIG_AUTO_DISCOVER",
            "value": "true",
            "type": "PLAINTEXT",
        }


@pytest.mark.parametrize(
    "rule, action, resource",
    [
        ("on-pull-request", "codebuild:StartBuild", "arn:aws:codebuild:us-east-1:123456789012:project/web-dev-preview"),
        ("drift-schedule", "codebuild:StartBuild", "arn:aws:codebuild:us-east-1:123456789012:project/web-dev-drift"),
        ("on-push", "codepipeline:StartPipelineExecution", "arn:aws:codepipeline:us-east-1:123456789012:web-dev"),
    ],
)
def test_each_event_role_may_start_exactly_its_target(rule, action, resource, dev):
    (statement,) = json.loads(
        dev.one("aws:iam/rolePolicy:RolePolicy", f"pipeline-{rule}-events-policy").inputs["policy"]
    )["Statement"]
    assert (statement["Action"], statement["Resource"]) == (action, resource)


def test_the_unit_tests_role_can_publish_its_report(dev):
    (reports,) = [s for s in _statements(dev, "unit-tests") if s.get("Sid") == "Reports"]
    assert sorted(reports["Action"]) == [
        "codebuild:BatchPutCodeCoverages",
        "codebuild:BatchPutTestCases",
        "codebuild:CreateReport",
        "codebuild:CreateReportGroup",
        "codebuild:UpdateReport",
    ]
    assert reports["Resource"] == "arn:aws:codebuild:us-east-1:123456789012:report-group/web-dev-unit-tests-*"


def test_the_pipeline_may_start_exactly_the_builds_its_stages_run(dev, prod):
    for plan in (dev, prod):
        pipeline = plan.one("aws:codepipeline/pipeline:Pipeline").inputs
        projects = {
            action["configuration"]["ProjectName"]
            for stage in pipeline["stages"]
            for action in stage["actions"]
            if action.get("provider") == "CodeBuild"
        }
        assert {"web-dev-deploy", "web-prd-deploy"} & projects
        policy = plan.one("aws:iam/rolePolicy:RolePolicy", "pipeline-pipeline-policy").inputs["policy"]
        builds = next(s for s in json.loads(policy)["Statement"] if s["Sid"] == "Builds")
        account = "arn:aws:codebuild:us-east-1:123456789012:project/"
        assert sorted(builds["Resource"]) == sorted(account + p for p in projects)


def test_the_preview_assumes_the_configured_preview_role_and_nothing_else():
    from conftest import run_plan

    plan = run_plan("dev", **{"cicd:pipeline": {"previewRoleArn": PREVIEW_ROLE}})
    assert _variables(plan, "preview")["PREVIEW_ROLE_ARN"] == PREVIEW_ROLE
    assumes = [s for s in _statements(plan, "preview") if s["Action"] == "sts:AssumeRole"]
    assert assumes == [
        {"Sid": "AssumePreviewRole", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": PREVIEW_ROLE}
    ]


def test_prod_only_reads_what_it_needs_of_dev(prod):
    """The chain's IAM: every grant of prod that names dev's resources reads, and reads only releases."""
    reads = {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
        "s3:GetObjectVersionTagging",
        "s3:GetBucketAcl",
        "s3:GetBucketLocation",
        "s3:GetBucketVersioning",
        "ssm:GetParameterHistory",
        "kms:Decrypt",
        "ecr:BatchCheckLayerAvailability",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
    }
    upstream = []
    for policy in prod.all("aws:iam/rolePolicy:RolePolicy"):
        for statement in json.loads(policy.inputs["policy"])["Statement"]:
            text = json.dumps(statement)
            if "web-dev" in text or "/web/dev/" in text:
                upstream.append((policy.name, statement))
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert set(actions) <= reads, (policy.name, statement)
    names = sorted({name for name, _ in upstream})
    assert names == [
        "pipeline-choose-policy",
        "pipeline-deploy-policy",
        "pipeline-pipeline-policy",
        "pipeline-release-policy",
        "service-execution-policy",
    ]
    bundles = [s for _, s in upstream if s.get("Sid") in ("UpstreamBundles", "Source")]
    assert bundles and all(s["Resource"].endswith("web-dev-releases-123456789012/dev/*") for s in bundles)


def test_prod_jobs_may_call_exactly_what_the_release_scripts_run(prod):
    """verify-release.sh reads dev's record history; publish-release.sh (prod) reads dev's bundles and
    writes prod's record, history and lead time: each call has its grant."""
    deploy = {s["Sid"]: s for s in _statements(prod, "deploy")}
    assert deploy["UpstreamReleases"]["Action"] == "ssm:GetParameterHistory"
    assert deploy["UpstreamReleases"]["Resource"] == "arn:aws:ssm:us-east-1:123456789012:parameter/cicd/web/dev/release"
    release = {s["Sid"]: s for s in _statements(prod, "release")}
    assert release["Record"]["Action"] == "ssm:PutParameter"
    assert release["Record"]["Resource"] == "arn:aws:ssm:us-east-1:123456789012:parameter/cicd/web/prod/release"
    assert release["History"]["Resource"] == "arn:aws:s3:::web-prd-releases-123456789012/prod/*"
    assert release["UpstreamBundles"]["Resource"] == "arn:aws:s3:::web-dev-releases-123456789012/dev/*"
    assert release["RollbackAlarms"]["Action"] == "cloudwatch:DescribeAlarms"
    assert release["Approver"]["Action"] == "codepipeline:ListActionExecutions"


def test_every_pipeline_job_reads_and_writes_only_the_objects_of_the_artifact_bucket(dev):
    bucket = dev.one("aws:s3/bucket:Bucket", "pipeline-artifacts").inputs["bucket"]
    in_pipeline = ("unit-tests", "sonarqube", "trivy", "image", "deploy", "release")
    for role in in_pipeline:
        artifacts = [s for s in _statements(dev, role) if s.get("Sid") == "Artifacts"]
        assert artifacts == [
            {
                "Sid": "Artifacts",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ], role
    for role in ("drift", "preview"):  # they clone the repository: no pipeline artifacts
        assert not [s for s in _statements(dev, role) if s.get("Sid") == "Artifacts"], role
