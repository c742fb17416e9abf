#!/usr/bin/env bash
# Lets the AWS CLI, the Pulumi CLI and its AWS provider act as a role for the rest of a build:
#   bash buildspecs/scripts/use-role.sh ROLE_ARN SESSION_NAME && export AWS_PROFILE=cicd-role AWS_SDK_LOAD_CONFIG=1
# It writes a profile whose credentials come from assuming the role with the build's own (container)
# credentials, so every SDK assumes the role again before its session expires: AWS caps a chained role
# session at one hour, and a release may wait longer. It checks the role at once and fails the build
# with the reason when it cannot be assumed.
set -euo pipefail
role_arn="${1:?usage: use-role.sh ROLE_ARN SESSION_NAME}"
session="${2:?usage: use-role.sh ROLE_ARN SESSION_NAME}"
region="${AWS_REGION:-${AWS_DEFAULT_REGION:?AWS_REGION is not set}}"
profile=cicd-role
# Session names allow letters, digits and =,.@- (2 to 64 characters).
session="$(printf '%s' "$session" | tr -c 'A-Za-z0-9=,.@-' '-' | cut -c1-64)"
[[ ${#session} -ge 2 ]] || session="${session}-s"  # STS refuses a one-character name
config="${AWS_CONFIG_FILE:-$HOME/.aws/config}"
mkdir -p "$(dirname "$config")"
{
  echo "[profile $profile]"
  echo "role_arn = $role_arn"
  echo "role_session_name = $session"
  echo "credential_source = EcsContainer"
  echo "duration_seconds = 3600"
  echo "region = $region"
} > "$config"
if ! identity="$(AWS_PROFILE="$profile" aws sts get-caller-identity --query Arn --output text 2>&1)"; then
  echo "error: cannot assume $role_arn as this build's role: $identity" >&2
  echo "Check that the role exists and trusts this CodeBuild project's role (README, bootstrap)." >&2
  exit 1
fi
echo "acting as $identity"
