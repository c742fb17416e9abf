#!/usr/bin/env bash
# Record a release of $ENVIRONMENT once its deploy has succeeded (components/release.py has the format).
#   building stack (BUILDS=1): IMAGE_URI, GIT_SHA and COMMITTED_AT come from the pipeline; the source
#     tree (this build's directory) is bundled with release.json as <env>/<commit>.zip, and as
#     <env>/latest.zip once recorded (its creation starts the downstream pipelines)
#   promoting stack (BUILDS=0): the deploy job exported the commit it deployed (DEPLOYED_COMMIT); that
#     upstream bundle's release.json is the record's base, and the bundle is kept as <env>/current.zip
#     for the drift check
# Then: the history object, the lead time metric, the SSM record, and last the newest bundle.
# Writes the released image to $1. Fails, recording nothing, while a rollback alarm is in ALARM.
set -euo pipefail
out="$1"
: "${ENVIRONMENT:?}" "${RELEASE_PARAMETER:?}" "${RELEASES_BUCKET:?}" "${ROLLBACK_ALARMS:?}" "${EXECUTION_ID:?}"

# shellcheck disable=SC2086 # the alarm names are separate words
states="$(aws cloudwatch describe-alarms --alarm-names $ROLLBACK_ALARMS --query 'MetricAlarms[].[AlarmName,StateValue]' --output text)"
expected="$(wc -w <<<"$ROLLBACK_ALARMS")"
if [[ "$(grep -c . <<<"$states")" -ne "$expected" ]]; then
  echo "error: expected $expected rollback alarms, found: $states" >&2
  exit 1
fi
if grep -qw ALARM <<<"$states"; then
  echo "error: a rollback alarm is in ALARM, not releasing:" >&2
  echo "$states" >&2
  exit 1
fi

approver="$(aws codepipeline list-action-executions --pipeline-name "$PIPELINE_NAME" \
  --filter "pipelineExecutionId=$EXECUTION_ID" --output json | python3 -c '
import json, sys
details = json.load(sys.stdin).get("actionExecutionDetails", [])
print(next((d.get("updatedBy") for d in details
            if d.get("input", {}).get("actionTypeId", {}).get("category") == "Approval" and d.get("updatedBy")), "none"))')"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
work="$(mktemp -d)"
downstream=()  # the releases buckets of downstream stacks in other accounts that got this release

# Lead time for changes (DORA): from the commit to this release, in minutes. Best effort, and before
# anything is recorded: a time it cannot read is reported and skipped, never a failed release.
# CodeCommit and connections give the commit time as ISO 8601 or as "<epoch seconds> <+hhmm>".
lead_time() {
  COMMITTED="$1" NOW="$now" python3 -c '
import os, sys
from datetime import datetime, timezone
def parse(text):
    text = text.strip()
    head = text.split()[0] if text else ""
    if head.isdigit():
        return datetime.fromtimestamp(int(head), timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
committed = os.environ["COMMITTED"]
try:
    print(round((parse(os.environ["NOW"]) - parse(committed)).total_seconds() / 60, 1))
except ValueError as err:
    print(f"warning: no lead time, the commit time {committed!r} is unreadable ({err})", file=sys.stderr)
'
}

# This release's bundle into a bucket of another account, only if that account owns the bucket
# (`aws s3 cp` has no --expected-bucket-owner; put-object does).
put_downstream() {  # bucket owner key
  aws s3api put-object --bucket "$1" --expected-bucket-owner "$2" --key "$3" --body "$work/bundle.zip" > /dev/null
}

if [[ "${BUILDS:-1}" == "1" ]]; then
  : "${IMAGE_URI:?}" "${GIT_SHA:?}"
  [[ "$IMAGE_URI" == *@sha256:* ]] || { echo "error: IMAGE_URI must be a digest, got: $IMAGE_URI" >&2; exit 1; }
  # Tag the image as released: the repository's lifecycle keeps released images (components/image.py).
  # The tag names exactly this digest: the manifest is read back byte for byte in its own media type
  # (no conversion), and put-image with --image-digest refuses any other bytes. A retry finds the tag
  # in place (an IMMUTABLE tag cannot be put twice) and goes on only when it names this digest.
  repository="${IMAGE_URI%@*}"; repository="${repository#*/}"; digest="${IMAGE_URI#*@}"
  tag="release-$ENVIRONMENT-$GIT_SHA"
  if existing="$(aws ecr describe-images --repository-name "$repository" --image-ids "imageTag=$tag" \
      --query 'imageDetails[0].imageDigest' --output text 2>&1)"; then
    if [[ "$existing" != "$digest" ]]; then
      echo "error: $tag already names $existing, not $digest" >&2
      exit 1
    fi
  elif [[ "$existing" == *ImageNotFoundException* ]]; then
    aws ecr batch-get-image --repository-name "$repository" --image-ids "imageDigest=$digest" --output json \
      --accepted-media-types application/vnd.docker.distribution.manifest.v2+json \
      application/vnd.docker.distribution.manifest.list.v2+json application/vnd.oci.image.manifest.v1+json \
      application/vnd.oci.image.index.v1+json > "$work/image.json"
    WORK="$work" python3 -c '
import json, os
image = json.load(open(os.path.join(os.environ["WORK"], "image.json")))["images"][0]
open(os.path.join(os.environ["WORK"], "manifest.json"), "w", newline="").write(image["imageManifest"])
open(os.path.join(os.environ["WORK"], "media"), "w").write(image["imageManifestMediaType"])'
    aws ecr put-image --repository-name "$repository" --image-tag "$tag" --image-digest "$digest" \
      --image-manifest "file://$work/manifest.json" --image-manifest-media-type "$(cat "$work/media")" > /dev/null
  else
    echo "error: cannot read $repository: $existing" >&2
    exit 1
  fi
  bundle_key="$ENVIRONMENT/$GIT_SHA.zip"
  record="$(IMAGE="$IMAGE_URI" COMMIT="$GIT_SHA" COMMITTED="${COMMITTED_AT:-}" TIME="$now" APPROVER="$approver" \
    SOURCE="s3://$RELEASES_BUCKET/$bundle_key" python3 -c '
import json, os
print(json.dumps({"image": os.environ["IMAGE"], "commit": os.environ["COMMIT"], "committed": os.environ["COMMITTED"],
                  "time": os.environ["TIME"], "execution": os.environ["EXECUTION_ID"], "approver": os.environ["APPROVER"],
                  "environment": os.environ["ENVIRONMENT"], "source": os.environ["SOURCE"]}, sort_keys=True))')"
  src="${CODEBUILD_SRC_DIR:-$PWD}"
  printf '%s\n' "$record" > "$src/release.json"
  (cd "$src" && zip -q -r "$work/bundle.zip" . -x '.git/*' 'venv/*' '*/__pycache__/*')
  aws s3 cp --only-show-errors "$work/bundle.zip" "s3://$RELEASES_BUCKET/$bundle_key"
  # A downstream stack in another account reads bundles from its own releases bucket (encrypted there
  # with its key): each gets this release's bundle now, and `latest.zip` (which starts its pipeline)
  # after the record. A stack not deployed yet (no bucket) is skipped and promotes a later release;
  # any other failure fails the release.
  # DOWNSTREAM_BUCKETS: <account>/<bucket> words. Each copy names the account that must own the
  # bucket (S3 refuses it otherwise): a bucket of that name created first by anyone else gets nothing.
  for entry in ${DOWNSTREAM_BUCKETS:-}; do
    owner="${entry%%/*}"; bucket="${entry#*/}"
    if [[ ! "$owner" =~ ^[0-9]{12}$ || -z "$bucket" || "$bucket" == "$entry" ]]; then
      echo "error: DOWNSTREAM_BUCKETS holds '$entry'; each word must be <account ID>/<bucket>" >&2
      exit 1
    fi
    if ! copied="$(put_downstream "$bucket" "$owner" "$bundle_key" 2>&1)"; then
      if [[ "$copied" == *NoSuchBucket* ]]; then
        echo "warning: $bucket does not exist (that stack is not deployed yet): it gets no copy of this release" >&2
        continue
      fi
      echo "error: cannot copy this release to $bucket (of account $owner): $copied" >&2
      exit 1
    fi
    downstream+=("$owner/$bucket")
  done
else
  : "${DEPLOYED_COMMIT:?the deploy job exports it}" "${PROMOTE_FROM:?}" "${UPSTREAM_RELEASES_BUCKET:?}"
  aws s3 cp --only-show-errors "s3://$UPSTREAM_RELEASES_BUCKET/$PROMOTE_FROM/$DEPLOYED_COMMIT.zip" "$work/bundle.zip"
  unzip -p "$work/bundle.zip" release.json > "$work/upstream.json"
  record="$(TIME="$now" APPROVER="$approver" UPSTREAM="$work/upstream.json" python3 -c '
import json, os
release = json.load(open(os.environ["UPSTREAM"]))
release.update(time=os.environ["TIME"], execution=os.environ["EXECUTION_ID"], approver=os.environ["APPROVER"],
               environment=os.environ["ENVIRONMENT"], promoted_from=release.get("environment", ""))
print(json.dumps(release, sort_keys=True))')"
  aws s3 cp --only-show-errors "$work/bundle.zip" "s3://$RELEASES_BUCKET/$ENVIRONMENT/current.zip"
fi

# The record names the bundle's bytes: a downstream deploy refuses a bundle that is not them.
record="$(SHA="$(sha256sum "$work/bundle.zip" | cut -d' ' -f1)" python3 -c '
import json, os, sys
record = json.loads(sys.argv[1])
record["bundle_sha256"] = os.environ["SHA"]
print(json.dumps(record, sort_keys=True))' "$record")"
image="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["image"])' "$record")"
commit="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["commit"])' "$record")"
committed="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get("committed") or "")' "$record")"
minutes=""
[[ -z "$committed" ]] || minutes="$(lead_time "$committed")"
printf '%s\n' "$record" > "$work/record.json"
aws s3 cp --only-show-errors "$work/record.json" "s3://$RELEASES_BUCKET/$ENVIRONMENT/history/$now-$commit.json"
if [[ -n "$minutes" ]]; then
  aws cloudwatch put-metric-data --namespace "$METRIC_NAMESPACE" --metric-name LeadTimeMinutes --value "$minutes" \
    --unit None || echo "warning: the lead time was not recorded" >&2
fi
aws ssm put-parameter --name "$RELEASE_PARAMETER" --type String --overwrite --value "$record" > /dev/null
# Last: the newest bundle, whose creation starts the downstream pipelines (S3's event), once the record
# they check it against exists. A building stack's own, then the copies in other accounts' buckets.
if [[ "${BUILDS:-1}" == "1" ]]; then
  aws s3 cp --only-show-errors "$work/bundle.zip" "s3://$RELEASES_BUCKET/$ENVIRONMENT/latest.zip"
fi
for entry in "${downstream[@]}"; do
  put_downstream "${entry#*/}" "${entry%%/*}" "$ENVIRONMENT/latest.zip"
done
printf '%s\n' "$image" > "$out"
echo "released $image ($commit) to $ENVIRONMENT; record $RELEASE_PARAMETER"
