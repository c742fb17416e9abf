"""The pipeline's shell scripts and the PR comment, run for real against stub `aws`, `docker`, `trivy`
and `pulumi` commands that record how they were called."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile

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


# -- releases: recording one, and promoting one -----------------------------------------------------

AWS_STUB = r"""
s3path() { local p="${1#s3://}"; echo "$FAKE_S3/$p"; }
case "$1 $2" in
  "cloudwatch describe-alarms") printf '%b\n' "$ALARM_STATES" ;;
  "codepipeline list-action-executions")
    printf '{"actionExecutionDetails": [{"input": {"actionTypeId": {"category": "Approval"}}, "updatedBy": "%s"}]}' \
      "${APPROVER:-}" ;;
  "ecr describe-images")
    if [[ -z "${EXISTING_TAG_DIGEST:-}" ]]; then echo "An error occurred (ImageNotFoundException)" >&2; exit 254; fi
    echo "$EXISTING_TAG_DIGEST" ;;
  "ecr batch-get-image")
    media="application/vnd.oci.image.manifest.v1+json"
    echo "{\"images\": [{\"imageManifestMediaType\": \"$media\", \"imageManifest\": \"{}\"}]}" ;;
  "ecr put-image") ;;
  "s3 cp")
    src="$4"; dst="$5"
    if [[ "$src" == s3://* ]]; then
      # As S3 answers a reader without s3:ListBucket: a missing object is 403.
      src="$(s3path "$src")"
      [[ -f "$src" ]] || { echo "An error occurred (403) when calling HeadObject: Forbidden" >&2; exit 1; }
    fi
    if [[ -n "${MISSING_BUCKET:-}" && "$dst" == "s3://$MISSING_BUCKET/"* ]]; then
      echo "An error occurred (NoSuchBucket) when calling the PutObject operation" >&2; exit 1
    fi
    if [[ "$dst" == s3://* ]]; then dst="$(s3path "$dst")"; fi
    mkdir -p "$(dirname "$dst")"; cp "$src" "$dst" ;;
  "s3api put-object")
    shift 2; bucket=""; key=""; body=""; owner=""
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --bucket) bucket="$2" ;; --key) key="$2" ;; --body) body="$2" ;; --expected-bucket-owner) owner="$2" ;;
      esac
      shift
    done
    if [[ -n "${MISSING_BUCKET:-}" && "$bucket" == "$MISSING_BUCKET" ]]; then
      echo "An error occurred (NoSuchBucket) when calling the PutObject operation" >&2; exit 254
    fi
    # The account that really owns the bucket: its name's suffix, unless someone else took the name.
    actual="${bucket##*-}"; [[ "$bucket" == "${SQUATTED_BUCKET:-}" ]] && actual=999999999999
    if [[ -n "$owner" && "$owner" != "$actual" ]]; then
      echo "An error occurred (AccessDenied) when calling the PutObject operation: Access Denied" >&2; exit 254
    fi
    mkdir -p "$FAKE_S3/$bucket/$(dirname "$key")"; cp "$body" "$FAKE_S3/$bucket/$key"; echo '{"ETag": "x"}' ;;
  "ssm put-parameter")
    while [[ $# -gt 0 ]]; do
      if [[ "$1" == --value ]]; then printf '%s' "$2" > "$FAKE_S3/parameter.json"; fi; shift
    done ;;
  "ssm get-parameter-history")
    echo "${AWS_ACCESS_KEY_ID:-own}" > "$FAKE_S3/history-read-as"; cat "$FAKE_S3/history.json" ;;
  "sts assume-role") printf 'AKIDUPSTREAM\tsecret\ttoken\n' ;;
  "cloudwatch put-metric-data") ;;
esac
"""

RELEASED = REPO + "@" + DIGEST
SHA = "0123456789abcdef0123456789abcdef01234567"


def release_env(tmp_path, **extra):
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "Pulumi.yaml").write_text("name: cicd\n")
    return {
        "ENVIRONMENT": "dev",
        "RELEASE_PARAMETER": "/cicd/web/dev/release",
        "RELEASES_BUCKET": "web-dev-releases-123456789012",
        "ROLLBACK_ALARMS": "web-dev-blue-5xx-rate web-dev-green-5xx-rate",
        "ALARM_STATES": "web-dev-blue-5xx-rate\tOK\nweb-dev-green-5xx-rate\tOK",
        "PIPELINE_NAME": "web-dev",
        "EXECUTION_ID": "exec-1",
        "METRIC_NAMESPACE": "cicd/web-dev",
        "BUILDS": "1",
        "IMAGE_URI": RELEASED,
        "GIT_SHA": SHA,
        "COMMITTED_AT": "2026-11-27T10:00:00Z",
        "APPROVER": "alice",
        "CODEBUILD_SRC_DIR": str(source),
        "FAKE_S3": str(tmp_path / "s3"),
        **extra,
    }


def test_a_release_is_tagged_bundled_recorded_and_timed(tmp_path):
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    result = run("publish-release.sh", [str(tmp_path / "out")], tmp_path, release_env(tmp_path))
    assert result.returncode == 0, result.stderr
    s3 = tmp_path / "s3" / "web-dev-releases-123456789012" / "dev"
    assert (s3 / f"{SHA}.zip").exists() and (s3 / "latest.zip").exists()
    record = json.loads((tmp_path / "s3" / "parameter.json").read_text())
    assert {k: record[k] for k in ("image", "commit", "approver", "environment", "execution")} == {
        "image": RELEASED,
        "commit": SHA,
        "approver": "alice",
        "environment": "dev",
        "execution": "exec-1",
    }
    assert record["source"] == f"s3://web-dev-releases-123456789012/dev/{SHA}.zip"
    history = list((s3 / "history").iterdir())
    assert len(history) == 1 and json.loads(history[0].read_text()) == record
    log = calls(tmp_path)
    assert any(c.startswith(f"aws ecr put-image --repository-name web-dev --image-tag release-dev-{SHA}") for c in log)
    # The newest bundle comes last: its creation starts downstream pipelines, which check it against
    # the record, so the record is in place first (and so is the commit's own bundle).
    order = [c for c in log if c.startswith(("aws s3 cp", "aws ssm put-parameter"))]
    assert order[-1].endswith("s3://web-dev-releases-123456789012/dev/latest.zip")
    assert order[-2].startswith("aws ssm put-parameter")
    assert [c for c in order if c.endswith(f"/dev/{SHA}.zip")] and order.index(
        next(c for c in order if c.endswith(f"/dev/{SHA}.zip"))
    ) < len(order) - 2
    metric = next(c for c in log if c.startswith("aws cloudwatch put-metric-data"))
    assert "--metric-name LeadTimeMinutes" in metric
    minutes = float(metric.split("--value ")[1].split()[0])
    assert minutes > 0
    assert (tmp_path / "out").read_text().strip() == RELEASED
    # The record names the bundle's bytes; the bundle carries the record without that hash.
    assert record["bundle_sha256"] == hashlib.sha256((s3 / f"{SHA}.zip").read_bytes()).hexdigest()
    assert (s3 / "latest.zip").read_bytes() == (s3 / f"{SHA}.zip").read_bytes()
    with zipfile.ZipFile(s3 / "latest.zip") as bundle:
        inside = json.loads(bundle.read("release.json"))
        assert (
            inside == {k: v for k, v in record.items() if k != "bundle_sha256"} and "Pulumi.yaml" in bundle.namelist()
        )


def test_a_release_is_copied_to_downstream_accounts_and_starts_them_after_it_is_recorded(tmp_path):
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    buckets = "222222222222/web-prd-releases-222222222222 333333333333/web-stg-releases-333333333333"
    env = release_env(tmp_path, DOWNSTREAM_BUCKETS=buckets, MISSING_BUCKET="web-stg-releases-333333333333")
    result = run("publish-release.sh", [str(tmp_path / "out")], tmp_path, env)
    # A downstream stack not deployed yet does not fail dev's release: it is named, and promotes a later one.
    assert result.returncode == 0, result.stderr
    assert "warning: web-stg-releases-333333333333 does not exist" in result.stderr
    own = tmp_path / "s3" / "web-dev-releases-123456789012" / "dev"
    copy = tmp_path / "s3" / "web-prd-releases-222222222222" / "dev"
    assert (copy / f"{SHA}.zip").read_bytes() == (own / f"{SHA}.zip").read_bytes()
    assert (copy / "latest.zip").read_bytes() == (own / f"{SHA}.zip").read_bytes()
    log = calls(tmp_path)
    put = "aws s3api put-object --bucket web-prd-releases-222222222222 --expected-bucket-owner 222222222222 --key"
    bundle = next(i for i, c in enumerate(log) if c.startswith(f"{put} dev/{SHA}.zip "))
    latest = next(i for i, c in enumerate(log) if c.startswith(f"{put} dev/latest.zip "))
    # Every write into another account's bucket names the owner it must have.
    assert not [c for c in log if "s3://web-prd" in c or "s3://web-stg" in c]
    recorded = next(i for i, c in enumerate(log) if c.startswith("aws ssm put-parameter"))
    # The bundle is there before the record; latest.zip, which starts prod's pipeline, after it.
    assert bundle < recorded < latest
    record = json.loads((tmp_path / "s3" / "parameter.json").read_text())
    assert record["bundle_sha256"] == hashlib.sha256((copy / "latest.zip").read_bytes()).hexdigest()


def test_a_bucket_of_that_name_owned_by_another_account_gets_nothing_and_fails_the_release(tmp_path):
    """Anyone may create web-prd-releases-<P> first: S3 refuses the copy, and dev records nothing."""
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    env = release_env(
        tmp_path,
        DOWNSTREAM_BUCKETS="222222222222/web-prd-releases-222222222222",
        SQUATTED_BUCKET="web-prd-releases-222222222222",
    )
    result = run("publish-release.sh", [str(tmp_path / "out")], tmp_path, env)
    assert result.returncode != 0
    assert "cannot copy this release to web-prd-releases-222222222222 (of account 222222222222)" in result.stderr
    assert "AccessDenied" in result.stderr
    assert not (tmp_path / "s3" / "web-prd-releases-222222222222").exists()
    assert not [c for c in calls(tmp_path) if c.startswith("aws ssm put-parameter")]


@pytest.mark.parametrize("entry", ["web-prd-releases-222222222222", "2222/web-prd", "222222222222/"])
def test_a_downstream_bucket_without_its_owner_is_refused_before_anything_is_copied(tmp_path, entry):
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    result = run(
        "publish-release.sh", [str(tmp_path / "out")], tmp_path, release_env(tmp_path, DOWNSTREAM_BUCKETS=entry)
    )
    assert result.returncode == 1 and "each word must be <account ID>/<bucket>" in result.stderr
    assert not [c for c in calls(tmp_path) if c.startswith(("aws s3api", "aws ssm put-parameter"))]


@pytest.mark.parametrize(
    "states",
    ["web-dev-blue-5xx-rate\tALARM\nweb-dev-green-5xx-rate\tOK", "web-dev-blue-5xx-rate\tOK"],
    ids=["an-alarm-fires", "an-alarm-is-missing"],
)
def test_no_release_while_a_rollback_alarm_is_not_quiet(tmp_path, states):
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    result = run("publish-release.sh", [str(tmp_path / "out")], tmp_path, release_env(tmp_path, ALARM_STATES=states))
    assert result.returncode == 1
    assert not [c for c in calls(tmp_path) if c.startswith(("aws ssm put-parameter", "aws s3 cp", "aws ecr put-image"))]


@pytest.mark.parametrize("existing,code", [(DIGEST, 0), ("sha256:" + "f" * 64, 1)], ids=["same-digest", "other-digest"])
def test_a_retry_finds_the_tag_in_place_and_goes_on_only_if_it_names_this_digest(tmp_path, existing, code):
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    result = run(
        "publish-release.sh", [str(tmp_path / "out")], tmp_path, release_env(tmp_path, EXISTING_TAG_DIGEST=existing)
    )
    assert result.returncode == code, result.stderr
    log = calls(tmp_path)
    assert not [c for c in log if c.startswith("aws ecr put-image")]
    assert bool([c for c in log if c.startswith("aws ssm put-parameter")]) is (code == 0)


def test_the_tag_is_put_on_exactly_the_released_digest(tmp_path):
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    assert run("publish-release.sh", [str(tmp_path / "out")], tmp_path, release_env(tmp_path)).returncode == 0
    log = calls(tmp_path)
    fetch = next(c for c in log if c.startswith("aws ecr batch-get-image"))
    assert "application/vnd.oci.image.index.v1+json" in fetch  # no conversion of a multi-platform image
    put = next(c for c in log if c.startswith("aws ecr put-image"))
    assert f"--image-digest {DIGEST}" in put and "--image-manifest file://" in put


@pytest.mark.parametrize("committed", ["1764237600 -0800", "2026-11-27T10:00:00Z", "yesterday"])
def test_lead_time_reads_both_commit_time_forms_and_never_fails_a_release(tmp_path, committed):
    (tmp_path / "s3").mkdir()
    stub(tmp_path, "aws", AWS_STUB)
    result = run("publish-release.sh", [str(tmp_path / "out")], tmp_path, release_env(tmp_path, COMMITTED_AT=committed))
    assert result.returncode == 0, result.stderr
    metrics = [c for c in calls(tmp_path) if c.startswith("aws cloudwatch put-metric-data")]
    assert len(metrics) == (0 if committed == "yesterday" else 1)
    assert [c for c in calls(tmp_path) if c.startswith("aws ssm put-parameter")]


def upstream_bundle(tmp_path, image=RELEASED, commit=SHA, history=None):
    """dev's release of `commit` in the fake bucket, and dev's record history (with the bundle's hash)."""
    record = {"image": image, "commit": commit, "environment": "dev", "committed": "2026-11-27T10:00:00Z"}
    bundle = tmp_path / "s3" / "web-dev-releases-123456789012" / "dev" / f"{commit}.zip"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("release.json", json.dumps(record))
        archive.writestr("Pulumi.yaml", "name: cicd\n")
    recorded = {**record, "bundle_sha256": hashlib.sha256(bundle.read_bytes()).hexdigest()}
    entries = history if history is not None else [recorded]
    values = [json.dumps(r) for r in entries]
    (tmp_path / "s3" / "history.json").write_text(json.dumps(values))
    return recorded


PROMOTE_ENV = {
    "PROMOTE_FROM": "dev",
    "UPSTREAM_RELEASE_PARAMETER": "/cicd/web/dev/release",
    "UPSTREAM_RELEASES_BUCKET": "web-dev-releases-123456789012",
}


def test_prod_records_the_dev_release_it_deployed(tmp_path):
    upstream_bundle(tmp_path)
    stub(tmp_path, "aws", AWS_STUB)
    env = release_env(
        tmp_path,
        **PROMOTE_ENV,
        ENVIRONMENT="prod",
        BUILDS="0",
        DEPLOYED_COMMIT=SHA,
        RELEASE_PARAMETER="/cicd/web/prod/release",
        RELEASES_BUCKET="web-prd-releases-123456789012",
        ROLLBACK_ALARMS="web-prd-blue-5xx-rate",
        ALARM_STATES="web-prd-blue-5xx-rate\tOK",
    )
    result = run("publish-release.sh", [str(tmp_path / "out")], tmp_path, env)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "s3" / "parameter.json").read_text())
    assert (record["image"], record["commit"], record["environment"], record["promoted_from"]) == (
        RELEASED,
        SHA,
        "prod",
        "dev",
    )
    assert (tmp_path / "s3" / "web-prd-releases-123456789012" / "prod" / "current.zip").exists()
    # prod builds nothing and tags nothing: its images are dev's.
    assert not [c for c in calls(tmp_path) if c.startswith("aws ecr")]


def verify(tmp_path, release="latest", bundle_dir=None, **extra):
    env = {**PROMOTE_ENV, "RELEASE": release, "FAKE_S3": str(tmp_path / "s3"), **extra}
    stub(tmp_path, "aws", AWS_STUB)
    script = os.path.join(SCRIPTS, "verify-release.sh")
    environment = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run(
        ["bash", script, str(tmp_path / "release.env")],
        cwd=bundle_dir or tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_newest_dev_release_is_deployed_by_its_digest(tmp_path):
    record = upstream_bundle(tmp_path)
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps(record))
    result = verify(tmp_path, bundle_dir=source)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "release.env").read_text().splitlines()
    assert f"export IMAGE_URI={RELEASED}" in lines and f"export DEPLOYED_COMMIT={SHA}" in lines
    # The job runs the recorded bundle's source, fetched and checked, not whatever the pipeline got.
    deployed = lines[-1].split(" ", 1)[1]
    assert lines[-1].startswith("cd ") and deployed != str(source)
    with open(os.path.join(deployed, "release.json"), encoding="utf-8") as handle:
        assert json.load(handle)["commit"] == SHA


def test_the_choose_job_exports_the_release_the_approver_sees(tmp_path):
    """choose-release.yml's commands under the stub: the commit, digest and bundle hash it exports are
    the verified release's; a release dev never recorded exports nothing and fails the job."""
    record = upstream_bundle(tmp_path)
    stub(tmp_path, "aws", AWS_STUB)
    script = " && ".join(_build_commands("choose-release.yml")) + ' && echo "COMMIT=$RELEASE_COMMIT"'
    script += ' && echo "IMAGE=$RELEASE_IMAGE" && echo "BUNDLE=$RELEASE_BUNDLE_SHA256"'
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps(record))
    shutil.copytree(os.path.join(ROOT, "buildspecs"), source / "buildspecs")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path), **PROMOTE_ENV, "FAKE_S3": str(tmp_path / "s3")}
    done = subprocess.run(["bash", "-c", script], cwd=source, env={**env, "RELEASE": "latest"}, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 0, done.stderr
    bundle = tmp_path / "s3" / "web-dev-releases-123456789012" / "dev" / f"{SHA}.zip"
    assert f"COMMIT={SHA}" in done.stdout.splitlines() and f"IMAGE={RELEASED}" in done.stdout.splitlines()
    assert f"BUNDLE={hashlib.sha256(bundle.read_bytes()).hexdigest()}" in done.stdout.splitlines()
    refused = subprocess.run(["bash", "-c", script], cwd=source, env={**env, "RELEASE": "f" * 40},
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert refused.returncode != 0 and "never released commit" in refused.stderr
    assert "COMMIT=" not in refused.stdout


def test_a_recorded_release_whose_bundle_is_gone_is_named_with_the_bundle(tmp_path):
    earlier = "89abcdef0123456789abcdef0123456789abcdef"
    record = upstream_bundle(tmp_path, commit=earlier)
    (tmp_path / "s3" / "web-dev-releases-123456789012" / "dev" / f"{earlier}.zip").unlink()
    (tmp_path / "s3" / "history.json").write_text(json.dumps([json.dumps(record)]))
    result = verify(tmp_path, release=earlier[:8])
    assert result.returncode == 1
    bundle = f"s3://web-dev-releases-123456789012/dev/{earlier}.zip"
    assert f"error: cannot read {bundle}, the bundle of dev's release of {earlier}: it is missing" in result.stderr
    assert "(403)" in result.stderr and not (tmp_path / "release.env").exists()


def test_a_release_older_than_the_records_ssm_keeps_is_refused_saying_why(tmp_path):
    upstream_bundle(tmp_path)
    result = verify(tmp_path, release="fedcba9")
    assert result.returncode == 1
    assert (
        "dev never released commit fedcba9 among its last 100 records (Parameter Store keeps no more" in result.stderr
    )


def test_a_bundle_that_is_not_the_recorded_bytes_is_refused(tmp_path):
    record = upstream_bundle(tmp_path)
    bundle = tmp_path / "s3" / "web-dev-releases-123456789012" / "dev" / f"{SHA}.zip"
    with zipfile.ZipFile(bundle, "a") as archive:
        archive.writestr("__main__.py", "import evil\n")  # same release.json, other program
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps({k: v for k, v in record.items() if k != "bundle_sha256"}))
    result = verify(tmp_path, bundle_dir=source)
    assert result.returncode != 0 and "sha256 differs" in result.stderr
    assert not (tmp_path / "release.env").exists()


def test_a_digest_dev_never_released_is_refused(tmp_path):
    other = REPO + "@sha256:" + "e" * 64
    upstream_bundle(tmp_path, history=[{"image": other, "commit": SHA}])
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps({"image": RELEASED, "commit": SHA}))
    result = verify(tmp_path, bundle_dir=source)
    assert result.returncode != 0 and "never released" in result.stderr
    assert not (tmp_path / "release.env").exists()


def test_a_rollback_deploys_the_bundle_of_an_earlier_release(tmp_path):
    earlier = "89abcdef0123456789abcdef0123456789abcdef"
    old_image = REPO + "@sha256:" + "a" * 64
    record = upstream_bundle(tmp_path, image=old_image, commit=earlier)
    newest = {"image": RELEASED, "commit": SHA}
    (tmp_path / "s3" / "history.json").write_text(json.dumps([json.dumps(newest), json.dumps(record)]))
    result = verify(tmp_path, release=earlier[:12])
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "release.env").read_text()
    assert f"export IMAGE_URI={old_image}" in text and f"export GIT_SHA={earlier}" in text
    assert verify(tmp_path, release="main; rm -rf /").returncode == 1


@pytest.mark.parametrize("swap", ["image", "commit"])
def test_a_release_must_match_a_record_in_both_image_and_commit(tmp_path, swap):
    other = {"image": REPO + "@sha256:" + "e" * 64, "commit": "f" * 40}
    recorded = {
        "image": RELEASED,
        "commit": SHA,
        **({"image": other["image"]} if swap == "image" else {"commit": other["commit"]}),
    }
    upstream_bundle(tmp_path, history=[recorded])
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps({"image": RELEASED, "commit": SHA}))
    result = verify(tmp_path, bundle_dir=source)
    assert result.returncode != 0 and "never released" in result.stderr


@pytest.mark.parametrize("role", ["", "arn:aws:iam::111111111111:role/web-dev-reader-web-prd"])
def test_an_upstream_in_another_account_is_read_through_its_reader_role(tmp_path, role):
    record = upstream_bundle(tmp_path)
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps(record))
    result = verify(tmp_path, bundle_dir=source, **({"UPSTREAM_ROLE_ARN": role} if role else {}))
    assert result.returncode == 0, result.stderr
    reader = (tmp_path / "s3" / "history-read-as").read_text().strip()
    assumed = [c for c in calls(tmp_path) if c.startswith("aws sts assume-role")]
    if role:
        assert reader == "AKIDUPSTREAM" and len(assumed) == 1 and f"--role-arn {role}" in assumed[0]
    else:
        assert reader == "own" and not assumed


def test_a_reader_role_that_cannot_be_assumed_stops_the_deploy(tmp_path):
    record = upstream_bundle(tmp_path)
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps(record))
    stub_body = AWS_STUB.replace("printf 'AKIDUPSTREAM", "echo AccessDenied >&2; exit 254; printf 'AKIDUPSTREAM")
    result = verify(tmp_path, bundle_dir=source, UPSTREAM_ROLE_ARN="arn:aws:iam::111111111111:role/r")
    assert result.returncode == 0  # the plain stub assumes it
    stub(tmp_path, "aws", stub_body)
    environment = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path), **PROMOTE_ENV}
    environment.update(FAKE_S3=str(tmp_path / "s3"), UPSTREAM_ROLE_ARN="arn:aws:iam::111111111111:role/r")
    (tmp_path / "release.env").unlink()
    failed = subprocess.run(
        ["bash", os.path.join(SCRIPTS, "verify-release.sh"), str(tmp_path / "release.env")],
        cwd=source,
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert failed.returncode != 0 and "AccessDenied" in failed.stderr
    assert not (tmp_path / "release.env").exists()


# -- the pull request's cost section (cost-diff.sh) -------------------------------------------------

COST = {"monthlyUsd": 95.93, "pricesCompiled": "2026-11-27", "components": {"Network": 33.30}}


def cost_stubs(tmp_path, *, fetch_fails=False):
    """make and git as the preview job has them, and a python that plans instantly (writing `cost`
    with Network priced at the working directory's NETWORK file, or $33.30) but runs cost.diff."""
    stub(
        tmp_path,
        "make",
        'json="${4#ARGS=--json }"; printf \'{"stack": "dev", "cost": %s}\' "$HEAD_COST" > "$json"',
    )
    stub(
        tmp_path,
        "git",
        'case "$1" in\n'
        f"  fetch) {'echo fatal: could not read from remote >&2; exit 128' if fetch_fails else 'exit 0'} ;;\n"
        '  worktree) if [[ "$2" == add ]]; then mkdir -p "$5"; cp requirements.txt "$5/"; fi ;;\n'
        "esac",
    )
    stub(
        tmp_path,
        "python",
        'if [[ "$2" == offline.plan ]]; then printf \'{"stack": "dev", "cost": %s}\' "$BASE_COST" > "$6"; exit 0; fi\n'
        f'cd "{ROOT}" && exec {sys.executable} "$@"',
    )


def test_the_cost_section_compares_the_base_branch_with_the_pull_request(tmp_path):
    cost_stubs(tmp_path)
    head = {**COST, "monthlyUsd": 128.78, "components": {"Network": 66.15}}
    env = {"HEAD_COST": json.dumps(head), "BASE_COST": json.dumps(COST), "PYTHON": str(tmp_path / "python")}
    result = run("cost-diff.sh", ["dev", "main", str(tmp_path / "cost.md")], tmp_path, env)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "cost.md").read_text()
    assert text.startswith("**Monthly cost of stack dev**: $95.93 → $128.78 (+$32.85 a month")
    assert "| Network | $33.30 | $66.15 | +$32.85 |" in text
    log = calls(tmp_path)
    assert "git fetch --quiet --depth 1 origin refs/heads/main" in log
    assert any(c.startswith("git worktree remove --force") for c in log)


def test_a_base_that_cannot_be_fetched_is_said_and_the_preview_goes_on(tmp_path):
    cost_stubs(tmp_path, fetch_fails=True)
    env = {"HEAD_COST": json.dumps(COST), "BASE_COST": "{}", "PYTHON": str(tmp_path / "python")}
    result = run("cost-diff.sh", ["dev", "main", str(tmp_path / "cost.md")], tmp_path, env)
    assert result.returncode == 0
    assert (tmp_path / "cost.md").read_text() == (
        "**Monthly cost of stack dev**: $95.93 with this pull request; no estimate of the base (no plan).\n"
        "The base: cannot fetch main: fatal: could not read from remote\n"
    )


def test_the_comment_carries_the_cost_section_before_the_log():
    text = pr_comment.comment(
        stack="dev", commit="abc", status=0, setup_status=0, setup_log="", log="x" * 50_000, cost="**Monthly cost**\n"
    )
    assert text.index("**Monthly cost**") < text.index("```")
    assert len(text.encode("utf-8")) <= pr_comment.COMMENT_LIMIT_BYTES
