"""CloudWatch: log groups that expire and are encrypted; alarms that tell someone."""

from pulumi_policy import PolicyConfigSchema, Severity

from ._util import as_list, is_set, known, resource_policy

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DEFAULT_MINIMUM_RETENTION_DAYS = 14


def _retention(props, args):
    minimum = (args.get_config() or {}).get("minimumRetentionDays", DEFAULT_MINIMUM_RETENTION_DAYS)
    days = known(props.get("retentionInDays"), "retentionInDays")
    if not days:
        yield (
            f"Log groups must set a retention (unset means logs never expire). Set retentionInDays to at "
            f"least {minimum}."
        )
    elif days < minimum:
        yield f"Log groups must keep logs at least {minimum} days; got {days}. Raise retentionInDays."


def _kms(props, _args):
    if not is_set(props.get("kmsKeyId")):
        yield "Log groups must be encrypted with a customer-managed KMS key. Set kmsKeyId to the key's ARN."


def _alarm_actions(props, _args):
    if known(props.get("actionsEnabled"), "actionsEnabled") is False:
        yield "Alarms must be enabled. Remove actionsEnabled: false."
    if not is_set(props.get("alarmActions")) or not as_list(props.get("alarmActions")):
        yield "Alarms must notify someone. Set alarmActions to the alerts topic."


POLICIES = [
    resource_policy(
        "cloudwatch-log-group-retention",
        "Checks that log groups set a retention of at least the configured minimum.",
        LOG_GROUP,
        _retention,
        severity=Severity.MEDIUM,
        config_schema=PolicyConfigSchema(
            properties={
                "minimumRetentionDays": {"type": "integer", "minimum": 1, "default": DEFAULT_MINIMUM_RETENTION_DAYS}
            }
        ),
    ),
    resource_policy(
        "cloudwatch-log-group-kms",
        "Checks that log groups are encrypted with a KMS key.",
        LOG_GROUP,
        _kms,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "cloudwatch-alarm-actions",
        "Checks that alarms are enabled and have actions.",
        ALARM,
        _alarm_actions,
        severity=Severity.MEDIUM,
    ),
]
