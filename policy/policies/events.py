"""EventBridge: targets that do not lose events silently, schedules EventBridge accepts."""

import re

from pulumi_policy import Severity

from ._util import ADVISORY, is_set, known, resource_policy

TARGET = "aws:cloudwatch/eventTarget:EventTarget"
RULE = "aws:cloudwatch/eventRule:EventRule"
RATE_RE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$")
CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*?/,#L W-]+$")


def _schedule(props, _args):
    """EventBridge rules take rate(<n> <unit>) or cron() with six fields, exactly one of day-of-month
    and day-of-week being `?` (its scheduled-rule documentation); anything else fails at `up`."""
    expression = known(props.get("scheduleExpression"), "scheduleExpression")
    if not expression:
        return
    if expression.startswith("rate("):
        if not RATE_RE.match(expression):
            yield (
                f"scheduleExpression {expression!r} is not a rate EventBridge accepts. Use rate(1 hour), "
                "rate(5 minutes) and the like (singular unit for 1)."
            )
        return
    match = re.fullmatch(r"cron\((.*)\)", expression)
    fields = match.group(1).split(" ") if match else []
    if len(fields) != 6 or not all(CRON_FIELD_RE.match(f) for f in fields):
        yield (
            f"scheduleExpression {expression!r} must be cron(minutes hours day-of-month month day-of-week "
            "year): six fields, e.g. cron(0 6 * * ? *)."
        )
    elif (fields[2] == "?") == (fields[4] == "?"):
        yield (f"scheduleExpression {expression!r} must set exactly one of day-of-month and day-of-week to '?'.")


def _dlq_or_retry(props, _args):
    if not is_set(props.get("deadLetterConfig")) and not is_set(props.get("retryPolicy")):
        yield (
            "EventBridge targets should have a dead-letter queue or a retry policy. "
            "Set deadLetterConfig or retryPolicy."
        )


POLICIES = [
    resource_policy(
        "eventbridge-schedule-expression",
        "Checks that EventBridge schedules are rate() or six-field cron() expressions EventBridge accepts.",
        RULE,
        _schedule,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "eventbridge-target-dlq-or-retry",
        "Checks that EventBridge targets have a DLQ or retry policy.",
        TARGET,
        _dlq_or_retry,
        enforcement=ADVISORY,
        severity=Severity.LOW,
    ),
]
