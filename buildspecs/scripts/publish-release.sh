#!/usr/bin/env bash
# Record a release of $ENVIRONMENT once its deploy has succeeded (components/release.py has the format).
#   building stack (BUILDS=1): IMAGE_URI, GIT_SHA and COMMITTED_AT come from the pipeline; the source
#     tree (this build's directory) is bundled with release.json as <env>/<commit>.zip and <env>/latest.zip
#   promoting stack (BUILDS=0): the deploy job exported the commit it deployed (DEPLOYED_COMMIT); that
#     upstream bundle's release.json is the record's base, and the bundle is kept as <env>/current.zip
#     for the drift check
# Then: the history object, the SSM record (last: it starts downstream pipelines), the lead time metric.
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
  --filter "pipelineExecutionId=$EXECUTION_ID" \
  --query "actionExecutionDetails[?input.actionTypeId.category=='Approval'].updatedBy | [0]" --output text)"
[[ -n "$approver" && "$approver" != "None" ]] || approver="none"
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
work="$(mktemp -d)"

if [[ "${BUILDS:-1}" == "1" ]]; then
  : "${IMAGE_URI:?}" "${GIT_SHA:?}"
  [[ "$IMAGE_URI" == *@sha256:* ]] || { echo "error: IMAGE_URI must be a digest, got: $IMAGE_URI" >&2; exit 1; }
  # Tag the image as released: the repository's lifecycle keeps released images (components/image.py).
  repository="${IMAGE_URI%@*}"; repository="${repository#*/}"; digest="${IMAGE_URI#*@}"
  image_json="$(aws ecr batch-get-image --repository-name "$repository" --image-ids "imageDigest=$digest" --output json)"
  media="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["images"][0]["imageManifestMediaType"])' <<<"$image_json")"
  manifest="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["images"][0]["imageManifest"])' <<<"$image_json")"
  if ! tagged="$(aws ecr put-image --repository-name "$repository" --image-tag "release-$ENVIRONMENT-$GIT_SHA" \
      --image-manifest "$manifest" --image-manifest-media-type "$media" 2>&1)" && [[ "$tagged" != *ImageAlreadyExistsException* ]]; then
    echo "error: could not tag the released image: $tagged" >&2
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
  # What a downstream stack promotes: written before the record that starts its pipeline.
  aws s3 cp --only-show-errors "$work/bundle.zip" "s3://$RELEASES_BUCKET/$ENVIRONMENT/latest.zip"
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

image="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["image"])' "$record")"
commit="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["commit"])' "$record")"
printf '%s\n' "$record" > "$work/record.json"
aws s3 cp --only-show-errors "$work/record.json" "s3://$RELEASES_BUCKET/$ENVIRONMENT/history/$now-$commit.json"
aws ssm put-parameter --name "$RELEASE_PARAMETER" --type String --overwrite --value "$record" > /dev/null

# Lead time for changes (DORA): from the commit to this environment's release, in minutes.
committed="$(python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get("committed") or "")' "$record")"
if [[ -n "$committed" ]]; then
  minutes="$(COMMITTED="$committed" NOW="$now" python3 -c '
import os
from datetime import datetime, timezone
def parse(text):
    text = text.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), timezone.utc)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
print(round((parse(os.environ["NOW"]) - parse(os.environ["COMMITTED"])).total_seconds() / 60, 1))')"
  aws cloudwatch put-metric-data --namespace "$METRIC_NAMESPACE" --metric-name LeadTimeMinutes --value "$minutes" --unit None
fi
printf '%s\n' "$image" > "$out"
echo "released $image ($commit) to $ENVIRONMENT; record $RELEASE_PARAMETER"
