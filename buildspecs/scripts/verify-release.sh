#!/usr/bin/env bash
# The deploy job of a stack that promotes releases of $PROMOTE_FROM: choose the release and refuse a
# digest $PROMOTE_FROM never released. With $PROMOTE_FROM in another account (UPSTREAM_ROLE_ARN set),
# its record history is read through that role, and the bundles are the copies in this stack's bucket.
# RELEASE is "latest" (the release this pipeline started from) or a commit (a rollback). Either way the job deploys that commit's bundle from the upstream's releases
# bucket, and only if the upstream's record history (the SSM parameter's last 100 versions) holds the
# same image, commit and sha256 of the bundle's bytes. Writes shell lines to $1 that the buildspec sources: the exports of
# IMAGE_URI, GIT_SHA, DEPLOYED_COMMIT and BUNDLE_SHA256, and a `cd` into the release's source.
set -euo pipefail
out="$1"
: "${PROMOTE_FROM:?}" "${UPSTREAM_RELEASE_PARAMETER:?}" "${UPSTREAM_RELEASES_BUCKET:?}"
release="${RELEASE:-latest}"
dir="$PWD"
history="$(mktemp)"  # up to 100 records: a file, not an environment variable
if [[ -n "${UPSTREAM_ROLE_ARN:-}" ]]; then
  # The upstream is in another account: its records are read through the role it keeps for this job.
  creds="$(aws sts assume-role --role-arn "$UPSTREAM_ROLE_ARN" --role-session-name "verify-$PROMOTE_FROM" \
    --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)"
  read -r key secret token <<<"$creds"
  AWS_ACCESS_KEY_ID="$key" AWS_SECRET_ACCESS_KEY="$secret" AWS_SESSION_TOKEN="$token" \
    aws ssm get-parameter-history --name "$UPSTREAM_RELEASE_PARAMETER" --query 'Parameters[].Value' --output json > "$history"
else
  aws ssm get-parameter-history --name "$UPSTREAM_RELEASE_PARAMETER" --query 'Parameters[].Value' --output json > "$history"
fi
if [[ "$release" == "latest" ]]; then
  # The release this pipeline started from: its release.json names the commit.
  [[ -f release.json ]] || { echo "error: no release.json in the pipeline's source: not a release of $PROMOTE_FROM" >&2; exit 1; }
  release="$(python3 -c 'import json; print(json.load(open("release.json")).get("commit", ""))')"
fi
if [[ ! "$release" =~ ^[0-9a-f]{7,40}$ ]]; then
  echo "error: RELEASE must be latest or the commit of a $PROMOTE_FROM release; got '$release'" >&2
  exit 1
fi
# A short commit names the one release of $PROMOTE_FROM whose commit starts with it.
commit="$(HISTORY="$history" WANTED="$release" python3 -c '
import json, os, sys
wanted, upstream = os.environ["WANTED"], os.environ["PROMOTE_FROM"]
commits = set()
for value in json.load(open(os.environ["HISTORY"])) or []:
    try:
        commit = json.loads(value).get("commit", "")
    except ValueError:
        continue
    if commit.startswith(wanted):
        commits.add(commit)
if not commits:
    sys.exit(
        f"error: {upstream} never released commit {wanted} among its last 100 records (Parameter Store keeps no "
        "more versions of the record); refusing it"
    )
if len(commits) > 1:
    sys.exit(f"error: {len(commits)} recorded releases of {upstream} match commit {wanted}; give more of it")
print(commits.pop())')"
# Always the bundle of that commit, checked against the record's hash of its bytes, whatever the
# pipeline's source held: what is deployed is exactly what the upstream recorded.
dir="$(mktemp -d)"
bundle="s3://$UPSTREAM_RELEASES_BUCKET/$PROMOTE_FROM/$commit.zip"
if ! fetched="$(aws s3 cp --only-show-errors "$bundle" "$dir/bundle.zip" 2>&1)"; then
  # S3 answers a reader without s3:ListBucket 403 for an object that does not exist, not 404.
  echo "error: cannot read $bundle, the bundle of $PROMOTE_FROM's release of $commit: it is missing (deleted, or" \
    "never copied into this account's bucket) or unreadable; S3 said: $fetched" >&2
  exit 1
fi
bundle_sha256="$(sha256sum "$dir/bundle.zip" | cut -d' ' -f1)"
unzip -q "$dir/bundle.zip" -d "$dir/src"
dir="$dir/src"
if [[ ! -f "$dir/release.json" ]]; then
  echo "error: no release.json in the release bundle of $commit: not a release of $PROMOTE_FROM" >&2
  exit 1
fi
MANIFEST="$dir/release.json" HISTORY="$history" WANTED="$commit" DIR="$dir" SHA="$bundle_sha256" python3 - "$out" <<'PY'
import json, os, shlex, sys

release = json.load(open(os.environ["MANIFEST"]))
image, commit = release.get("image", ""), release.get("commit", "")
upstream = os.environ["PROMOTE_FROM"]
if "@sha256:" not in image:
    sys.exit(f"error: the release names no digest ({image!r}); refusing to deploy it")
wanted = os.environ["WANTED"]
if wanted != "latest" and not commit.startswith(wanted):
    sys.exit(f"error: bundle {wanted} holds the release of commit {commit}; refusing it")
released = []
for value in json.load(open(os.environ["HISTORY"])) or []:
    try:
        released.append(json.loads(value))
    except ValueError:
        continue
matching = [r for r in released if r.get("image") == image and r.get("commit") == commit]
if not matching:
    sys.exit(f"error: {upstream} never released {image} (commit {commit}); refusing to deploy it")
if not any(r.get("bundle_sha256") == os.environ["SHA"] for r in matching):
    sys.exit(f"error: the bundle of {commit} is not the one {upstream} recorded (sha256 differs); refusing it")
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    for name, value in (
        ("IMAGE_URI", image),
        ("GIT_SHA", commit),
        ("DEPLOYED_COMMIT", commit),
        ("BUNDLE_SHA256", os.environ["SHA"]),
    ):
        handle.write(f"export {name}={shlex.quote(value)}\n")
    handle.write(f"cd {shlex.quote(os.environ['DIR'])}\n")
print(f"deploying the {upstream} release of {commit}: {image}")
PY
