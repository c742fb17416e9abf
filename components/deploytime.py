"""How long a release waits, and so how long `pulumi up` and the pipeline's deploy job may take.

Shared by the configuration (which refuses a release no deploy job could wait for) and the service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Beyond the configured waiting: starting and pulling tasks, the smoke test, ECS polling.
RELEASE_OVERHEAD_MINUTES = 15
# Installing the Pulumi CLI and the virtualenvs, then the preview with the policy pack.
DEPLOY_JOB_OVERHEAD_MINUTES = 20
# The longest deploy job we allow: CodeBuild accepts up to 2160 minutes; we hold a pipeline's build
# action to 8 hours, the limit we understand CodePipeline to set (not confirmed against its quota page).
DEPLOY_JOB_MAX_MINUTES = 480


def deploy_wait_seconds(deployment: Any) -> dict[str, int]:
    """The configured waiting on a deployment's critical path, in seconds, by cause.

    `deployment` has the fields of config.DeploymentSettings. Green must pass `healthy_threshold`
    health checks, traffic shifts (with a bake between canary or linear steps), the whole of green
    bakes, then blue drains for the deregistration delay.
    """
    waits = {
        "health checks": deployment.health_check_interval_seconds * deployment.healthy_threshold,
        "bake time": deployment.bake_time_minutes * 60,
        "deregistration delay": deployment.deregistration_delay_seconds,
    }
    if deployment.strategy == "CANARY":
        waits["canary bake"] = int(deployment.canary_bake_minutes or 0) * 60
    if deployment.strategy == "LINEAR":
        steps = math.ceil(100 / float(deployment.linear_step_percent or 100))
        waits["linear steps"] = (steps - 1) * int(deployment.linear_step_bake_minutes or 0) * 60
    waits["total"] = sum(waits.values())
    return waits


def release_timeout_minutes(waits: Mapping[str, int]) -> int:
    """How long `pulumi up` may wait for a release: the configured waiting plus the time ECS spends
    starting and pulling tasks, running the smoke test and polling (15 minutes), and never less than
    the provider's own 20-minute default."""
    return max(20, math.ceil(waits["total"] / 60) + RELEASE_OVERHEAD_MINUTES)


def deploy_job_minutes(waits: Mapping[str, int]) -> int:
    """The deploy job's build timeout: the release plus installing the tools and the preview."""
    return release_timeout_minutes(waits) + DEPLOY_JOB_OVERHEAD_MINUTES
