"""EventBridge: targets that do not lose events silently."""

from pulumi_policy import Severity

from ._util import ADVISORY, is_set, resource_policy

TARGET = "aws:cloudwatch/eventTarget:EventTarget"


def _dlq_or_retry(props, _args):
    if not is_set(props.get("deadLetterConfig")) and not is_set(props.get("retryPolicy")):
        yield (
            "EventBridge targets should have a dead-letter queue or a retry policy. "
            "Set deadLetterConfig or retryPolicy."
        )


POLICIES = [
    resource_policy(
        "eventbridge-target-dlq-or-retry",
        "Checks that EventBridge targets have a DLQ or retry policy.",
        TARGET,
        _dlq_or_retry,
        enforcement=ADVISORY,
        severity=Severity.LOW,
    ),
]
