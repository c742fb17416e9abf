#!/usr/bin/env bash
# The Image stage: build the service for PLATFORM, scan it with Trivy, and push <git sha> only when the
# scan passes; write "<repository>@sha256:<digest>" to the file named by $1.
#
# Idempotent: the repository's tags are IMMUTABLE, so a re-run of the same commit (a retried or
# re-released execution) reuses the image already pushed under that tag, with its digest, and never
# builds or pushes again. It also pulls the X-Ray daemon once through the stack's pull-through cache,
# so the cache holds it before tasks in subnets without internet access need it.
set -euo pipefail
out="${1:?usage: build-image.sh OUTPUT_FILE}"
: "${REPOSITORY_URI:?}" "${GIT_SHA:?}" "${PLATFORM:?}" "${TRIVY_SEVERITY:?}"
registry="${REPOSITORY_URI%%/*}"
repository="${REPOSITORY_URI#*/}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:?AWS_REGION is not set}}"

aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"

errors="$(mktemp)"
if digest="$(aws ecr describe-images --repository-name "$repository" --image-ids "imageTag=$GIT_SHA" \
    --query 'imageDetails[0].imageDigest' --output text 2>"$errors")"; then
  echo "$REPOSITORY_URI:$GIT_SHA was pushed before (a re-run of this commit): reusing $digest"
elif grep -q ImageNotFoundException "$errors"; then
  docker build --platform "$PLATFORM" --build-arg APP_VERSION="$GIT_SHA" -t "$REPOSITORY_URI:$GIT_SHA" app
  # Nothing reaches the registry before it passes the scan.
  trivy image --exit-code 1 --severity "$TRIVY_SEVERITY" --no-progress "$REPOSITORY_URI:$GIT_SHA"
  docker push "$REPOSITORY_URI:$GIT_SHA"
  pushed="$(docker inspect --format '{{index .RepoDigests 0}}' "$REPOSITORY_URI:$GIT_SHA")"
  digest="${pushed##*@}"
else
  echo "error: cannot look up $repository:$GIT_SHA in ECR:" >&2
  cat "$errors" >&2
  exit 1
fi
if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then
  echo "error: no digest for $REPOSITORY_URI:$GIT_SHA (got '$digest')" >&2
  exit 1
fi
echo "$REPOSITORY_URI@$digest" > "$out"
echo "image: $REPOSITORY_URI@$digest"

if [[ -n "${XRAY_IMAGE:-}" ]]; then
  docker pull --platform "$PLATFORM" "$XRAY_IMAGE"
fi
