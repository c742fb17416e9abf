"""The pipeline's scripts when an external command fails: every call to `aws`, `docker`, `trivy`, `pulumi`,
`curl` (and the tools they stand for) is made to fail in turn, and the script must then stop with a
non-zero exit before it records, pushes or writes anything that depends on that call. A script that
lost `set -e` or `pipefail` goes on after the failure and fails these tests.

A passing run names its calls first; then each of them in turn (by its first words and how many such
calls came before it) is made to fail.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter

import pytest
from conftest import ROOT
from test_scripts import AWS_STUB, IMAGE_ENV, PROMOTE_ENV, RELEASED, release_env, upstream_bundle

SCRIPTS = os.path.join(ROOT, "buildspecs", "scripts")
TOKEN = "ecr-password-0123456789abcdef"  # what `aws ecr get-login-password` prints: never to be shown


def failing_stub(directory, name, body):
    """A command on PATH that logs its arguments, and fails instead when it is the $FAIL_NTH call whose
    first three words are $FAIL_KEY (a call named, not counted: the two ends of a pipeline start in
    either order)."""
    log = directory / "calls.log"
    path = directory / name
    # The count and the log line are taken under a lock: a pipeline's commands run at once.
    path.write_text(
        "#!/usr/bin/env bash\n"
        f'exec 9>>"{log}.lock"; flock 9\n'
        f'line="{name} $*"; key="$(cut -d" " -f1-3 <<<"$line")"\n'
        f'nth=$(( $( (cat "{log}" 2>/dev/null || true) | cut -d" " -f1-3 | grep -cxF "$key") + 1 ))\n'
        f'echo "$line" >> "{log}"\n'
        "exec 9>&-\n"
        'if [[ "$key" == "${FAIL_KEY:-}" && "$nth" == "${FAIL_NTH:-0}" ]]; then\n'
        f'  echo "stub: {name} failed ($key, call $nth)" >&2; exit 1\n'
        "fi\n"
        f"{body}\n"
    )
    path.chmod(0o755)


def key(call: str) -> str:
    return " ".join(call.split(" ")[:3])


def run(script, args, cwd, tmp_path, env, fail=("", 0)):
    log = tmp_path / "calls.log"
    if log.exists():
        log.unlink()
    environment = {"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": str(tmp_path), "AWS_REGION": "us-east-1", **env}
    result = subprocess.run(
        ["bash", os.path.join(SCRIPTS, script), *args],
        cwd=cwd,
        env={**environment, "FAIL_KEY": fail[0], "FAIL_NTH": str(fail[1])},
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result, (log.read_text().splitlines() if log.exists() else [])


def each_failure(script, args, cwd, tmp_path, env, out=None):
    """The calls of a passing run, then (call, result, calls from the failed one on) for each call made
    to fail; `result.wrote` says whether the run left the file `out` (removed before each run)."""
    if out is not None:
        out.unlink(missing_ok=True)
    passing, calls = run(script, args, cwd, tmp_path, env)
    assert passing.returncode == 0, passing.stderr
    assert calls, "the passing run made no external call"
    assert out is None or out.exists(), "the passing run wrote nothing"
    for k, call in enumerate(calls):
        if out is not None:
            out.unlink(missing_ok=True)
        nth = sum(1 for earlier in calls[:k] if key(earlier) == key(call)) + 1
        result, made = run(script, args, cwd, tmp_path, env, fail=(key(call), nth))
        result.wrote = out is not None and out.exists()
        failed = next(i for i, c in enumerate(made) if key(c) == key(call) and
                      sum(1 for e in made[:i] if key(e) == key(call)) + 1 == nth)  # fmt: skip
        # Up to the failure, calls of the passing run (temporary names aside), none of them twice.
        assert Counter(map(_plain, made[:failed])) <= Counter(map(_plain, calls)), made
        yield call, result, made[failed:]


def _plain(call: str) -> str:
    """A call with what differs from run to run (temporary paths, times, a zip's hash) left out."""
    for pattern, stands_for in VARYING:
        call = re.sub(pattern, stands_for, call)
    return call


VARYING = (
    (r"/tmp/tmp\.\w+", "/tmp/T"),
    (r"\d{4}-\d\d-\d\dT[\d:]{8}Z", "<time>"),
    (r"[0-9a-f]{64}", "<sha256>"),
    (r"LeadTimeMinutes --value [\d.]+", "<minutes>"),
)


# -- publish-release.sh ------------------------------------------------------------------------------


def test_a_release_that_cannot_make_a_call_fails_and_records_nothing_after_it(tmp_path):
    (tmp_path / "s3").mkdir()
    failing_stub(tmp_path, "aws", AWS_STUB)
    env = release_env(tmp_path, DOWNSTREAM_BUCKETS="222222222222/web-prd-releases-222222222222")
    out = tmp_path / "out"
    seen = 0
    for call, result, after in each_failure("publish-release.sh", [str(out)], ROOT, tmp_path, env, out):
        seen += 1
        if call.startswith("aws cloudwatch put-metric-data"):
            # The lead time is best effort: never a failed release.
            assert result.returncode == 0 and "the lead time was not recorded" in result.stderr
            continue
        assert result.returncode != 0, call
        assert not result.wrote, call
        if not call.startswith(("aws ssm put-parameter", "aws s3api put-object --bucket web-prd")):
            # Nothing after a failure: no record, no newest bundle that would start prod.
            assert not [c for c in after[1:] if c.startswith("aws ssm put-parameter") or "latest.zip" in c], call
    assert seen >= 9


# -- verify-release.sh (and the choose and deploy jobs that run it) ---------------------------------


@pytest.mark.parametrize("role", ["", "arn:aws:iam::111111111111:role/web-dev-reader-web-prd"])
def test_a_promotion_that_cannot_read_the_upstream_deploys_nothing_and_shows_no_credentials(tmp_path, role):
    record = upstream_bundle(tmp_path)
    source = tmp_path / "pipeline-source"
    source.mkdir()
    (source / "release.json").write_text(json.dumps(record))
    stub_body = AWS_STUB.replace(
        "printf 'AKIDUPSTREAM\\tsecret\\ttoken\\n'", "printf 'AKIDUPSTREAM\\tS3CR3TKEY\\tT0K3N\\n'"
    )
    assert stub_body != AWS_STUB
    failing_stub(tmp_path, "aws", stub_body)
    env = {**PROMOTE_ENV, "RELEASE": "latest", "FAKE_S3": str(tmp_path / "s3")}
    if role:
        env["UPSTREAM_ROLE_ARN"] = role
    out = tmp_path / "release.env"
    failures = list(each_failure("verify-release.sh", [str(out)], source, tmp_path, env, out))
    assert [c.split()[1] + " " + c.split()[2] for c, _, _ in failures] == (
        ["sts assume-role", "ssm get-parameter-history", "s3 cp"] if role else ["ssm get-parameter-history", "s3 cp"]
    )
    for call, result, _ in failures:
        assert result.returncode != 0 and not result.wrote, call
        assert "S3CR3TKEY" not in result.stdout + result.stderr and "T0K3N" not in result.stdout + result.stderr


# -- build-image.sh ----------------------------------------------------------------------------------


def test_an_image_build_that_cannot_make_a_call_pushes_nothing_after_it(tmp_path):
    digest = "sha256:" + "c" * 64
    failing_stub(
        tmp_path,
        "aws",
        'if [[ "$2" == describe-images ]]; then echo "An error occurred (ImageNotFoundException)" >&2; exit 254; fi\n'
        f"echo {TOKEN}",
    )
    failing_stub(
        tmp_path,
        "docker",
        'if [[ "$1" == login ]]; then cat > /dev/null; fi\n'
        f'if [[ "$1" == inspect ]]; then echo "{IMAGE_ENV["REPOSITORY_URI"]}@{digest}"; fi',
    )
    failing_stub(tmp_path, "trivy", "exit 0")
    out = tmp_path / "uri"
    failures = list(each_failure("build-image.sh", [str(out)], ROOT, tmp_path, IMAGE_ENV, out))
    kinds = [" ".join(c.split()[:2]) for c, _, _ in failures]
    # get-login-password, piped into docker login (either may start first): pipefail makes a failed
    # get-login-password count.
    assert sorted(kinds[:2]) == ["aws ecr", "docker login"]
    assert kinds[2:] == [
        "aws ecr",  # describe-images: a failure other than "not found" is not taken for a new tag
        "docker build",
        "trivy image",
        "docker push",
        "docker inspect",
        "docker pull",
    ]
    for call, result, after in failures:
        assert result.returncode != 0, call
        if not call.startswith(("docker push", "docker inspect", "docker pull")):
            assert not [c for c in after if c.startswith("docker push")], call
        if not call.startswith("docker pull"):
            assert not result.wrote, call
        assert TOKEN not in result.stdout + result.stderr  # the ECR password goes through stdin only


# -- use-role.sh, pin-running-image.sh, pulumi-setup.sh ----------------------------------------------


def test_a_role_check_that_fails_fails_the_job(tmp_path):
    failing_stub(tmp_path, "aws", 'echo "arn:aws:sts::123456789012:assumed-role/r/s"')
    failures = list(each_failure("use-role.sh", ["arn:aws:iam::123456789012:role/r", "s"], tmp_path, tmp_path, {}))
    assert [c for c, _, _ in failures] == ["aws sts get-caller-identity --query Arn --output text"]
    assert all(result.returncode == 1 and "cannot assume" in result.stderr for _, result, _ in failures)


def test_keeping_the_running_image_fails_on_any_failed_read_or_write(tmp_path):
    image = RELEASED
    failing_stub(
        tmp_path,
        "pulumi",
        'case "$1 $2" in\n'
        '  "config --json") echo "{}" ;;\n'
        f'  "stack output") echo \'{{"imageRef": "{image}"}}\' ;;\n'
        "esac",
    )
    failing_stub(tmp_path, "aws", 'echo "An error occurred (ParameterNotFound)" >&2; exit 254')
    env = {"RELEASE_PARAMETER": "/cicd/web/dev/release", "PULUMI_STACK": "dev"}
    failures = list(each_failure("pin-running-image.sh", [], tmp_path, tmp_path, env))
    assert [" ".join(c.split()[:3]) for c, _, _ in failures] == [
        "pulumi config --json",
        "aws ssm get-parameter",  # a failure that is not ParameterNotFound is an error, not "no record"
        "pulumi stack output",
        "pulumi config set",
    ]
    for call, result, _ in failures:
        assert result.returncode != 0, call


def test_the_pulumi_jobs_setup_stops_at_its_first_failure(tmp_path):
    # python3 -m venv DIR makes DIR/bin/pip, a stub too.
    failing_stub(tmp_path, "pip", "exit 0")
    failing_stub(tmp_path, "python3", f'mkdir -p "$3/bin" && cp "{tmp_path}/pip" "$3/bin/pip"')
    failing_stub(tmp_path, "pulumi", "exit 0")
    work = tmp_path / "checkout"
    (work / "policy").mkdir(parents=True)
    env = {"PULUMI_BACKEND_URL": "s3://state", "PULUMI_STACK": "dev"}
    failures = list(each_failure("pulumi-setup.sh", [], work, tmp_path, env))
    assert [" ".join(c.split()[:2]) for c, _, _ in failures] == [
        "python3 -m",
        "pip install",
        "python3 -m",
        "pip install",
        "pulumi login",
        "pulumi stack",
    ]
    assert all(result.returncode != 0 for _, result, _ in failures)
    # A stack that does not exist (a wrong backend or name) must fail the job, not be created empty.
    _, calls = run("pulumi-setup.sh", [], work, tmp_path, env)
    assert [c for c in calls if c.startswith("pulumi ")] == ["pulumi login s3://state", "pulumi stack select dev"]


# -- the installers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "script, variable", [("install-pulumi.sh", "PULUMI_VERSION"), ("install-trivy.sh", "TRIVY_VERSION")]
)
def test_an_installer_refuses_a_download_whose_checksum_differs(tmp_path, script, variable):
    # curl "downloads" a file and a checksum list whose sums are of other bytes: nothing is unpacked.
    version = f"0.0.{os.getpid()}"
    failing_stub(
        tmp_path,
        "curl",
        'out=""; for a in "$@"; do [[ "$prev" == -o ]] && out="$a"; prev="$a"; done\n'
        'url="${@: -1}"; file="${url##*/}"\n'
        'if [[ -n "$out" ]]; then printf "%064d  %s\\n%064d %s\\n" 0 "$NAME" 0 "$NAME" > "$out"; '
        'else echo payload > "$file"; fi',
    )
    failing_stub(tmp_path, "tar", "exit 0")
    name = (
        f"pulumi-v{version}-linux-x64.tar.gz"
        if script == "install-pulumi.sh"
        else f"trivy_{version}_Linux-64bit.tar.gz"
    )
    if os.uname().machine != "x86_64":
        pytest.skip("the stub names the x86_64 download")
    result, calls = run(script, [], tmp_path, tmp_path, {variable: version, "NAME": name})
    try:
        assert result.returncode != 0
        assert not [c for c in calls if c.startswith("tar")]  # a file that fails its checksum is not unpacked
    finally:
        for leftover in (name, "pulumi-checksums.txt", "trivy-checksums.txt"):
            if os.path.exists(os.path.join("/tmp", leftover)):
                os.remove(os.path.join("/tmp", leftover))


@pytest.mark.parametrize(
    "script, variable, url",
    [
        (
            "install-pulumi.sh",
            "PULUMI_VERSION",
            "https://github.com/pulumi/pulumi/releases/download/v{v}/pulumi-v{v}-linux-x64.tar.gz",
        ),
        (
            "install-trivy.sh",
            "TRIVY_VERSION",
            "https://github.com/aquasecurity/trivy/releases/download/v{v}/trivy_{v}_Linux-64bit.tar.gz",
        ),
    ],
)
def test_an_installer_downloads_the_file_its_project_publishes_for_x86_64(tmp_path, script, variable, url):
    if os.uname().machine != "x86_64":
        pytest.skip("the names below are the x86_64 downloads")
    version = f"0.0.{os.getpid()}"
    failing_stub(tmp_path, "curl", "exit 22")  # the first download fails: its URL is what we check
    result, calls = run(script, [], tmp_path, tmp_path, {variable: version})
    assert result.returncode != 0
    assert calls == [f"curl -fsSLO {url.format(v=version)}"]


def test_the_lead_time_is_sent_in_minutes(tmp_path):
    from datetime import UTC, datetime, timedelta

    (tmp_path / "s3").mkdir()
    failing_stub(tmp_path, "aws", AWS_STUB)
    committed = (datetime.now(UTC) - timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = release_env(tmp_path, COMMITTED_AT=committed)
    result, calls = run("publish-release.sh", [str(tmp_path / "out")], ROOT, tmp_path, env)
    assert result.returncode == 0, result.stderr
    (metric,) = [c for c in calls if c.startswith("aws cloudwatch put-metric-data")]
    assert "--metric-name LeadTimeMinutes" in metric
    assert 89.5 <= float(metric.split("--value ")[1].split()[0]) <= 92
