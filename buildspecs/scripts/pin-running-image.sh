#!/usr/bin/env bash
# For the jobs that run the program without a new release (the drift check, pull-request previews):
# keep the image the stack runs now. A digest already in the stack's config wins; otherwise the
# stack's `imageRef` output is set as cicd:service.image in this checkout only. Run after
# `pulumi stack select`. Fails when the stack has never been deployed: these jobs never build.
set -euo pipefail
export PATH="/opt/pulumi:$PATH"
configured="$(pulumi config get --path cicd:service.image 2>/dev/null || true)"
if [[ -n "$configured" ]]; then
  echo "image from the stack's configuration: $configured"
  exit 0
fi
running="$(pulumi stack output imageRef 2>/dev/null || true)"
if [[ "$running" != *@sha256:* ]]; then
  echo "error: stack ${PULUMI_STACK:-?} has no imageRef output (got '${running}'): it has not been deployed" >&2
  echo "yet. Run the README's bootstrap (the first pulumi up) before its pipeline, drift check or previews." >&2
  exit 1
fi
pulumi config set --path cicd:service.image "$running"
echo "image the stack runs now: $running"
