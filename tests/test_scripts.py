"""The pipeline's shell scripts and the PR comment, run for real against stub `aws`, `docker`, `trivy`
and `pulumi` commands that record how they were called."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

SCRIPTS = os.path.join(ROOT, "buildspecs", "scripts")
sys.path.insert(0, SCRIPTS)
import pr_comment  # noqa: E402

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev"
DIGEST = "sha256:" + "c" * 64


def stub(directory, name, body):
    """A command on PATH that logs its arguments to calls.log, then runs `body` (bash)."""
    path = directory / name
    path.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "{directory}/calls.log"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def run(script, args, tmp_path, env=None):
    environment = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path), "AWS_REGION": "us-east-1", **(env or {})}
    return subprocess.run(
        ["bash", os.path.join(SCRIPTS, script), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def calls(tmp_path):
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


# -- the Image stage ---------------------------------------------------------------------------

IMAGE_ENV = {
    "REPOSITORY_URI": REPO,
    "GIT_SHA": "abc123",
    "PLATFORM": "linux/arm64",
    "TRIVY_SEVERITY": "HIGH",
    "XRAY_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/web-dev-pub/xray/aws-xray-daemon:3.x",
}


def image_stubs(tmp_path, describe, trivy_exit=0):
    stub(tmp_path, "aws", f'if [[ "$2" == describe-images ]]; then {describe}; exit 0; fi; echo token')
    stub(
        tmp_path,
        "docker",
        f'if [[ "$1" == login ]]; then cat > /dev/null; fi\nif [[ "$1" == inspect ]]; then echo "{REPO}@{DIGEST}"; fi',
    )
    stub(tmp_path, "trivy", f"exit {trivy_exit}")


def test_a_new_commit_is_built_scanned_then_pushed(tmp_path):
    image_stubs(tmp_path, 'echo "An error occurred (ImageNotFoundException) when calling" >&2; exit 254')
    result = run("build-image.sh", [str(tmp_path / "uri")], tmp_path, IMAGE_ENV)
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    order = [
        next(i for i, c in enumerate(log) if c.startswith(p)) for p in ("docker build", "trivy image", "docker push")
    ]
    assert order == sorted(order)  # nothing is pushed before the scan passes
    assert (tmp_path / "uri").read_text().strip() == f"{REPO}@{DIGEST}"
    assert any(c == f"docker pull --platform linux/arm64 {IMAGE_ENV['XRAY_IMAGE']}" for c in log)
    # The stub's exit code stands for the scan's verdict only if the script asks trivy to fail on findings.
    assert f"trivy image --exit-code 1 --severity HIGH --no-progress {REPO}:abc123" in log


def test_a_rerun_of_the_same_commit_reuses_the_pushed_image(tmp_path):
    # The repository is IMMUTABLE: pushing abc123 again would fail the re-run.
    image_stubs(tmp_path, f'echo "{DIGEST}"')
    result = run("build-image.sh", [str(tmp_path / "uri")], tmp_path, IMAGE_ENV)
    assert result.returncode == 0, result.stderr
    log = calls(tmp_path)
    assert not [c for c in log if c.startswith(("docker build", "docker push", "trivy"))]
    assert (tmp_path / "uri").read_text().strip() == f"{REPO}@{DIGEST}"
    assert "reusing" in result.stdout


def test_a_failed_scan_pushes_nothing(tmp_path):
    image_stubs(tmp_path, 'echo "(ImageNotFoundException)" >&2; exit 254', trivy_exit=1)
    result = run("build-image.sh", [str(tmp_path / "uri")], tmp_path, IMAGE_ENV)
    assert result.returncode != 0
    assert not [c for c in calls(tmp_path) if c.startswith("docker push")]
    assert not (tmp_path / "uri").exists()


def test_an_ecr_error_is_not_taken_for_a_missing_tag(tmp_path):
    image_stubs(tmp_path, 'echo "An error occurred (AccessDeniedException)" >&2; exit 254')
    result = run("build-image.sh", [str(tmp_path / "uri")], tmp_path, IMAGE_ENV)
    assert result.returncode != 0 and "AccessDeniedException" in result.stderr
    assert not [c for c in calls(tmp_path) if c.startswith(("docker build", "docker push"))]


# -- acting as a role --------------------------------------------------------------------------


def test_a_role_that_cannot_be_assumed_fails_at_once_with_the_reason(tmp_path):
    stub(tmp_path, "aws", 'echo "An error occurred (AccessDenied) when calling the AssumeRole operation" >&2; exit 254')
    result = run("use-role.sh", ["arn:aws:iam::123456789012:role/cicd-deployer", "deploy-dev"], tmp_path)
    assert result.returncode == 1
    assert "cannot assume arn:aws:iam::123456789012:role/cicd-deployer" in result.stderr
    assert "AccessDenied" in result.stderr


def test_the_role_profile_renews_its_credentials(tmp_path):
    stub(tmp_path, "aws", 'echo "arn:aws:sts::123456789012:assumed-role/cicd-deployer/deploy-dev"')
    result = run("use-role.sh", ["arn:aws:iam::123456789012:role/cicd-deployer", "preview-pr-7/x"], tmp_path)
    assert result.returncode == 0, result.stderr
    profile = (tmp_path / ".aws" / "config").read_text()
    # Every SDK assumes the role again from the build's container credentials when a session ends.
    assert "credential_source = EcsContainer" in profile
    assert "role_arn = arn:aws:iam::123456789012:role/cicd-deployer" in profile
    assert "role_session_name = preview-pr-7-x" in profile


def _build_commands(name):
    with open(os.path.join(ROOT, "buildspecs", name), encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    return [c for phase in spec["phases"].values() for c in phase.get("commands", [])]


@pytest.mark.parametrize("name", ["deploy.yml", "drift.yml", "preview.yml"])
def test_no_job_hides_a_failure_behind_eval(name):
    joined = "\n".join(_build_commands(name))
    assert 'eval "$(' not in joined
    assert "use-role.sh" in joined


# -- the image the stack runs now --------------------------------------------------------------

RUNNING = REPO + "@" + DIGEST


def pulumi_stub(tmp_path, configured="", output=RUNNING, failure=""):
    """`pulumi config --json` and `pulumi stack output --json` as the CLI prints them."""
    service = json.dumps({"name": "web", **({"image": configured} if configured else {})})
    config = json.dumps(
        {
            "aws:region": {"value": "us-east-1", "secret": False},
            "cicd:service": {"value": service, "objectValue": json.loads(service), "secret": False},
        }
    )
    outputs = json.dumps({"imageRef": output} if output else {})
    stub(
        tmp_path,
        "pulumi",
        f'''
if [[ -n "{failure}" ]]; then echo "{failure}" >&2; exit 255; fi
case "$1 $2" in
  "config --json") echo '{config}' ;;
  "stack output") echo '{outputs}' ;;
esac''',
    )


def test_jobs_without_a_release_keep_the_running_image(tmp_path):
    pulumi_stub(tmp_path)
    result = run("pin-running-image.sh", [], tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"pulumi config set --path cicd:service.image {RUNNING}" in calls(tmp_path)


def test_a_running_image_by_tag_is_refused(tmp_path):
    pulumi_stub(tmp_path, output=REPO + ":abc123")
    result = run("pin-running-image.sh", [], tmp_path)
    assert result.returncode == 1
    assert not [c for c in calls(tmp_path) if c.startswith("pulumi config set")]


def test_a_configured_digest_is_kept(tmp_path):
    other = REPO + "@sha256:" + "d" * 64
    pulumi_stub(tmp_path, configured=other)
    assert run("pin-running-image.sh", [], tmp_path).returncode == 0
    assert not [c for c in calls(tmp_path) if c.startswith("pulumi config set")]


def test_an_unreadable_state_is_reported_as_such(tmp_path):
    pulumi_stub(tmp_path, failure="error: could not read s3://state: AccessDenied")
    result = run("pin-running-image.sh", [], tmp_path, {"PULUMI_STACK": "dev"})
    assert result.returncode != 0 and "AccessDenied" in result.stderr
    assert "has not been deployed" not in result.stderr


def test_a_stack_never_deployed_fails_instead_of_building(tmp_path):
    pulumi_stub(tmp_path, output="")
    result = run("pin-running-image.sh", [], tmp_path, {"PULUMI_STACK": "dev"})
    assert result.returncode == 1 and "has not been deployed" in result.stderr
    assert not [c for c in calls(tmp_path) if c.startswith("pulumi config set")]


# -- the pull-request comment ------------------------------------------------------------------


def test_the_comment_is_cut_between_characters_and_within_the_limit():
    log = "▸ resource  aws:ecs/service:Service\n" * 2000 + "Policy check passed"
    text = pr_comment.comment(stack="dev", commit="abc", status=0, setup_status=0, setup_log="", log=log)
    encoded = text.encode("utf-8")
    assert len(encoded) <= pr_comment.COMMENT_LIMIT_BYTES
    assert encoded.decode("utf-8") == text  # whole characters only
    assert text.startswith("Preview of stack dev for commit abc: passed")
    assert "Policy check passed" in text and "earlier lines cut" in text
    assert text.endswith("```\n")


@pytest.mark.parametrize("limit", range(300, 340))
def test_every_cut_point_of_multibyte_text_stays_whole(limit):
    text = pr_comment.comment(
        stack="dev", commit="abc", status=1, setup_status=0, setup_log="", log="é€😀" * 200, limit=limit
    )
    assert len(text.encode("utf-8")) <= limit and "\ufffd" not in text


def test_a_failed_setup_shows_the_end_of_its_log():
    text = pr_comment.comment(
        stack="dev",
        commit="abc",
        status=1,
        setup_status=1,
        setup_log="pip install ...\nerror: cannot assume arn:aws:iam::1:role/p: AccessDenied\n",
        log="",
    )
    assert "FAILED" in text and "setup failed (exit 1)" in text
    assert "cannot assume arn:aws:iam::1:role/p" in text


def test_a_fence_in_the_log_does_not_end_the_block():
    text = pr_comment.comment(stack="dev", commit="abc", status=0, setup_status=0, setup_log="", log="a\n```\nb")
    assert text.count("```") == 2


def test_the_preview_build_posts_the_setup_log_when_setup_fails(tmp_path):
    """The whole preview command of preview.yml, with a preview role that cannot be assumed."""
    stub(
        tmp_path,
        "aws",
        """
if [[ "$1" == sts ]]; then echo "An error occurred (AccessDenied) assuming the role" >&2; exit 254; fi
if [[ "$1" == codecommit ]]; then f="${@: -1}"; cat "${f#file://}" > "$(dirname "$0")/posted.md"; fi""",
    )
    (script,) = [c for c in _build_commands("preview.yml") if "post-comment-for-pull-request" in c]
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_REGION": "us-east-1",
        "PREVIEW_ROLE_ARN": "arn:aws:iam::123456789012:role/preview",
        "PR_ID": "7",
        "PULUMI_STACK": "dev",
        "SOURCE_COMMIT": "abc",
        "DESTINATION_COMMIT": "def",
        "REPOSITORY_NAME": "web",
    }
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    posted = (tmp_path / "posted.md").read_text()
    assert "setup failed" in posted and "AccessDenied" in posted
    # The comment is posted with the build's own role: no profile of the preview role is in force.
    assert any(
        c.startswith("aws codecommit post-comment-for-pull-request --pull-request-id 7") for c in calls(tmp_path)
    )
