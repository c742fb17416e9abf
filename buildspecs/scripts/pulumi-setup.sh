#!/usr/bin/env bash
# Shared by the Pulumi jobs: the program's and the policy pack's virtualenvs, login, stack selection.
set -euo pipefail
export PATH="/opt/pulumi:$PATH"
python3 -m venv venv
venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
python3 -m venv policy/venv
policy/venv/bin/pip install --quiet --disable-pip-version-check -r policy/requirements.txt
pulumi login "${PULUMI_BACKEND_URL:?PULUMI_BACKEND_URL is not set}"
pulumi stack select "${PULUMI_STACK:?PULUMI_STACK is not set}"
