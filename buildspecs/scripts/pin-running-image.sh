#!/usr/bin/env bash
# For the jobs that run the program without a new release (the drift check, pull-request previews):
# keep the image the stack runs now. A digest already in the stack's config wins; then the stack's
# release record (RELEASE_PARAMETER), which the program reads itself; otherwise (a stack deployed but
# never released, as after the bootstrap) the stack's `imageRef` output is set as cicd:service.image
# in this checkout only. Run after
# `pulumi stack select`. Fails when the stack has never been deployed (these jobs never build), and
# fails with the CLI's own error when the config or the outputs cannot be read (state access, keys).
set -euo pipefail
export PATH="/opt/pulumi:$PATH"
config="$(pulumi config --json)"
configured="$(printf '%s' "$config" | python3 -c '
import json, sys
service = json.load(sys.stdin).get("cicd:service") or {}
value = service.get("objectValue")
if value is None and service.get("value"):
    value = json.loads(service["value"])
print((value or {}).get("image") or "")')"
if [[ -n "$configured" ]]; then
  echo "image from the stack's configuration: $configured"
  exit 0
fi
if [[ -n "${RELEASE_PARAMETER:-}" ]]; then
  if found="$(aws ssm get-parameter --name "$RELEASE_PARAMETER" --query Parameter.Value --output text 2>&1)"; then
    echo "the program deploys the release record $RELEASE_PARAMETER: $found"
    exit 0
  elif [[ "$found" != *ParameterNotFound* ]]; then
    echo "error: cannot read the release record $RELEASE_PARAMETER: $found" >&2
    exit 1
  fi
fi
outputs="$(pulumi stack output --json)"
running="$(printf '%s' "$outputs" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("imageRef") or "")')"
if [[ "$running" != *@sha256:* ]]; then
  echo "error: stack ${PULUMI_STACK:-?} has no imageRef output (got '${running}'): it has not been deployed" >&2
  echo "yet. Run the README's bootstrap (the first pulumi up) before its pipeline, drift check or previews." >&2
  exit 1
fi
pulumi config set --path cicd:service.image "$running"
echo "image the stack runs now: $running"
