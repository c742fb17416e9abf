#!/usr/bin/env bash
# Prints `export` lines for temporary credentials of a role: eval "$(assume-role.sh ARN SESSION)".
set -euo pipefail
role_arn="${1:?role ARN}"
session="${2:?session name}"
aws sts assume-role --role-arn "$role_arn" --role-session-name "$session" --duration-seconds 3600 \
  --query 'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text |
  awk '{ printf "export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_SESSION_TOKEN=%s\n", $1, $2, $3 }'
