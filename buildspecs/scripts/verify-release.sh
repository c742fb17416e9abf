#!/usr/bin/env bash
# The deploy job of a stack that promotes releases of $PROMOTE_FROM: choose the release and refuse a
# digest $PROMOTE_FROM never released. RELEASE is "latest" (the bundle this pipeline started from,
# the build's own directory) or a commit (a rollback: that release's bundle from the upstream's
# releases bucket). The image must be one of the upstream's recorded releases (the SSM parameter's
# history, its last 100 versions). Writes shell lines to $1 that the buildspec sources: the exports of
# IMAGE_URI, GIT_SHA and DEPLOYED_COMMIT, and a `cd` into the release's source.
set -euo pipefail
out="$1"
: "${PROMOTE_FROM:?}" "${UPSTREAM_RELEASE_PARAMETER:?}" "${UPSTREAM_RELEASES_BUCKET:?}"
release="${RELEASE:-latest}"
dir="$PWD"
history="$(mktemp)"  # up to 100 records: a file, not an environment variable
aws ssm get-parameter-history --name "$UPSTREAM_RELEASE_PARAMETER" --query 'Parameters[].Value' --output json > "$history"
if [[ "$release" != "latest" ]]; then
  if [[ ! "$release" =~ ^[0-9a-f]{7,40}$ ]]; then
    echo "error: RELEASE must be latest or the commit of a $PROMOTE_FROM release; got '$release'" >&2
    exit 1
  fi
  # A short commit names the one release of $PROMOTE_FROM whose commit starts with it.
  commit="$(HISTORY="$history" WANTED="$release" python3 -c '
import json, os, sys
wanted = os.environ["WANTED"]
commits = set()
for value in json.load(open(os.environ["HISTORY"])) or []:
    try:
        commit = json.loads(value).get("commit", "")
    except ValueError:
        continue
    if commit.startswith(wanted):
        commits.add(commit)
if len(commits) != 1:
    sys.exit(f"error: {len(commits)} recorded releases match commit {wanted}; name one")
print(commits.pop())')"
  dir="$(mktemp -d)"
  aws s3 cp --only-show-errors "s3://$UPSTREAM_RELEASES_BUCKET/$PROMOTE_FROM/$commit.zip" "$dir/bundle.zip"
  unzip -q "$dir/bundle.zip" -d "$dir/src"
  dir="$dir/src"
fi
if [[ ! -f "$dir/release.json" ]]; then
  echo "error: no release.json in the release bundle ($dir): not a release of $PROMOTE_FROM" >&2
  exit 1
fi
MANIFEST="$dir/release.json" HISTORY="$history" WANTED="$release" DIR="$dir" python3 - "$out" <<'PY'
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
if not any(r.get("image") == image and r.get("commit") == commit for r in released):
    sys.exit(f"error: {upstream} never released {image} (commit {commit}); refusing to deploy it")
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    for name, value in (("IMAGE_URI", image), ("GIT_SHA", commit), ("DEPLOYED_COMMIT", commit)):
        handle.write(f"export {name}={shlex.quote(value)}\n")
    handle.write(f"cd {shlex.quote(os.environ['DIR'])}\n")
print(f"deploying the {upstream} release of {commit}: {image}")
PY
