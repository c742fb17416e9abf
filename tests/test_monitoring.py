"""Observability: the key policy, alarms, dashboard, DORA metric filters, X-Ray and notifications."""

import copy
import json

import pytest
from filter_pattern import matches

from components import dashboard, delivery, monitoring

# Events as the AWS event reference documents them.
PIPELINE_EVENT = {
    "version": "0",
    "id": "01234567-0123-0123-0123-012345678901",
    "detail-type": "CodePipeline Pipeline Execution State Change",
    "source": "aws.codepipeline",
    "account": "123456789012",
    "time": "2026-11-20T10:03:07Z",
    "region": "us-east-1",
    "resources": ["arn:aws:codepipeline:us-east-1:123456789012:web-dev"],
    "detail": {
        "pipeline": "web-dev",
        "execution-id": "12345678-1234-5678-abcd-12345678abcd",
        "execution-trigger": {"trigger-type": "CloudWatchEvent", "trigger-detail": "web-dev-on-push"},
        "state": "SUCCEEDED",
        "version": 3,
        "pipeline-execution-attempt": 1.0,
    },
}
ALARM_EVENT = {
    "version": "0",
    "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
    "detail-type": "CloudWatch Alarm State Change",
    "source": "aws.cloudwatch",
    "account": "123456789012",
    "time": "2026-11-20T10:20:48Z",
    "region": "us-east-1",
    "resources": ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-dev-green-5xx-rate"],
    "detail": {
        "alarmName": "web-dev-green-5xx-rate",
        "state": {"value": "OK", "reason": "Threshold Crossed", "timestamp": "2026-11-20T10:20:48.551+0000"},
        "previousState": {"value": "ALARM", "reason": "Threshold Crossed", "timestamp": "2026-11-20T10:04:40.985+0000"},
        "configuration": {"metrics": []},
    },
}


ACTION_EVENT = {
    "version": "0",
    "id": "01234567-0123-0123-0123-012345678902",
    "detail-type": "CodePipeline Action Execution State Change",
    "source": "aws.codepipeline",
    "account": "123456789012",
    "time": "2026-11-20T10:03:07Z",
    "region": "us-east-1",
    "resources": ["arn:aws:codepipeline:us-east-1:123456789012:web-dev"],
    "detail": {
        "pipeline": "web-dev",
        "execution-id": "12345678-1234-5678-abcd-12345678abcd",
        "stage": "Deploy",
        "action": "PulumiUp",
        "state": "SUCCEEDED",
        "region": "us-east-1",
        "type": {"owner": "AWS", "provider": "CodeBuild", "category": "Build", "version": "1"},
        "version": 3,
    },
}


def pipeline_event(state):
    event = copy.deepcopy(PIPELINE_EVENT)
    event["detail"]["state"] = state
    return event


def action_event(state, action="PulumiUp"):
    event = copy.deepcopy(ACTION_EVENT)
    event["detail"].update(state=state, action=action)
    return event


def alarms(plan):
    return {a.inputs["name"]: a.inputs for a in plan.all("aws:cloudwatch/metricAlarm:MetricAlarm")}


# -- key and topic --------------------------------------------------------------------------------


def test_telemetry_key_lets_only_the_telemetry_services_use_it(prod):
    key = [k for k in prod.all("aws:kms/key:Key") if k.name == "observability-key"][0]
    assert key.inputs["enableKeyRotation"] is True
    statements = json.loads(key.inputs["policy"])["Statement"]
    services = {s["Principal"]["Service"]: s for s in statements if "Service" in s["Principal"]}
    assert set(services) == {
        "logs.us-east-1.amazonaws.com",
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "codestar-notifications.amazonaws.com",
    }
    logs = services["logs.us-east-1.amazonaws.com"]
    assert (
        logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
        == "arn:aws:logs:us-east-1:123456789012:log-group:*"
    )
    for service, statement in services.items():
        assert all(a.startswith("kms:") and "*" not in a for a in statement["Action"])
        if service != "logs.us-east-1.amazonaws.com":
            assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
            assert statement["Condition"] == {"StringEquals": {"kms:ViaService": "sns.us-east-1.amazonaws.com"}}
    account = [s for s in statements if "AWS" in s["Principal"]]
    assert [s["Principal"]["AWS"] for s in account] == ["arn:aws:iam::123456789012:root"]


def test_topic_is_encrypted_and_reaches_email_and_slack(prod):
    topic = prod.one("aws:sns/topic:Topic").inputs
    assert topic["kmsMasterKeyId"].startswith("arn:aws:kms:")
    email = prod.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (email["protocol"], email["endpoint"]) == ("email", "oncall@example.com")
    slack = prod.one("aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration").inputs
    assert (slack["slackTeamId"], slack["slackChannelId"]) == ("T0123ABCD", "C0123ABCD")
    assert slack["guardrailPolicyArns"] == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    # prod runs in us-east-1, where Chatbot has no API: the configuration lives in us-east-2.
    assert slack["region"] == "us-east-2"
    assert slack["snsTopicArns"] == ["arn:aws:sns:us-east-1:123456789012:web-prd-alerts"]
    chatbot_policy = json.loads(
        prod.one("aws:iam/rolePolicy:RolePolicy", "observability-chatbot-policy").inputs["policy"]
    )
    by_action = {s["Action"]: s["Resource"] for s in chatbot_policy["Statement"]}
    assert by_action["cloudwatch:DescribeAlarms"] == "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-prd-*"


def test_slack_only_when_both_ids_are_set(dev, variant):
    assert not [r for r in dev.registrations if r.type.startswith("aws:chatbot")]
    slack = variant.one("aws:chatbot/slackChannelConfiguration:SlackChannelConfiguration").inputs
    assert (slack["slackTeamId"], slack["slackChannelId"]) == ("T1", "C1")


# -- alarms ---------------------------------------------------------------------------------------


def test_service_alarms_and_their_thresholds(prod):
    found = alarms(prod)
    for name in (
        "web-prd-alb-5xx-rate",
        "web-prd-target-5xx-rate",
        "web-prd-p99-latency",
        "web-prd-cpu-high",
        "web-prd-memory-high",
        "web-prd-running-below-desired",
    ):
        assert name in found, name
        assert found[name]["alarmActions"] == ["arn:aws:sns:us-east-1:123456789012:web-prd-alerts"]
    p99 = found["web-prd-p99-latency"]
    assert (p99["metricName"], p99["extendedStatistic"], p99["threshold"]) == ("TargetResponseTime", "p99", 0.5)
    assert p99["dimensions"]["LoadBalancer"].startswith("app/web-prd-alb/")
    elb = {q["id"]: q for q in found["web-prd-alb-5xx-rate"]["metricQueries"]}
    assert elb["errors"]["metric"]["metricName"] == "HTTPCode_ELB_5XX_Count"
    assert found["web-prd-alb-5xx-rate"]["threshold"] == 1
    target = {q["id"]: q for q in found["web-prd-target-5xx-rate"]["metricQueries"]}
    assert target["errors"]["metric"]["metricName"] == "HTTPCode_Target_5XX_Count"
    assert target["rate"]["expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    cpu = found["web-prd-cpu-high"]
    assert (cpu["namespace"], cpu["dimensions"]) == ("AWS/ECS", {"ClusterName": "web-prd", "ServiceName": "web-prd"})
    running = {q["id"]: q for q in found["web-prd-running-below-desired"]["metricQueries"]}
    assert running["missing"]["expression"] == "desired - running"
    assert running["running"]["metric"]["namespace"] == "ECS/ContainerInsights"


def test_thresholds_follow_configuration(variant):
    found = alarms(variant)
    assert found["web-dev-p99-latency"]["threshold"] == 0.25
    assert found["web-dev-target-5xx-rate"]["threshold"] == 2.5
    assert found["web-dev-green-5xx-rate"]["threshold"] == 2.5


# -- dashboard ------------------------------------------------------------------------------------


def test_dashboard_shows_health_utilisation_pipeline_and_dora(dev):
    body = json.loads(dev.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"]]
    for title in (
        "Requests",
        "5xx",
        "Latency (s)",
        "Healthy hosts",
        "ECS CPU and memory (%)",
        "Deployments (the deploy action)",
        "DORA: deployments per day",
        "DORA: lead time for changes (minutes, commit to release)",
        "DORA: change failure rate (%)",
        "DORA: time to restore (minutes a rollback alarm stayed in ALARM)",
    ):
        assert title in titles, title
    by_title = {w["properties"].get("title"): w for w in body["widgets"]}
    latency = [m[-1]["stat"] for m in by_title["Latency (s)"]["properties"]["metrics"]]
    assert latency == ["p50", "p90", "p99"]
    cfr = by_title["DORA: change failure rate (%)"]["properties"]["metrics"][-1][0]
    assert cfr["expression"] == "IF(ok + failed > 0, 100 * failed / (ok + failed), 0)"
    assert by_title["DORA: deployments per day"]["properties"]["period"] == 86400
    lead = by_title["DORA: lead time for changes (minutes, commit to release)"]["properties"]
    assert lead["period"] == 86400
    assert [m[1:] for m in lead["metrics"]] == [
        ["LeadTimeMinutes", {"stat": "p50", "label": "median"}],
        ["LeadTimeMinutes", {"stat": "Maximum", "label": "longest"}],
    ]
    assert {m[0] for m in lead["metrics"]} == {"cicd/web-dev"}
    assert (
        by_title["DORA: time to restore (minutes a rollback alarm stayed in ALARM)"]["properties"]["query"]
        == f"SOURCE '/aws/events/web-dev-delivery' | {dashboard.TIME_TO_RESTORE_QUERY}"
    )
    for widget in body["widgets"]:
        assert widget["x"] + widget["width"] <= 24


# -- DORA from events -----------------------------------------------------------------------------


def test_pipeline_and_alarm_events_reach_the_delivery_log_group(dev):
    rules = {
        r.inputs["name"]: json.loads(r.inputs["eventPattern"])
        for r in dev.all("aws:cloudwatch/eventRule:EventRule")
        if "eventPattern" in r.inputs
    }
    deploys = rules["web-dev-pipeline-executions"]
    assert deploys["detail-type"] == [ACTION_EVENT["detail-type"]]
    assert deploys["detail"] == {"pipeline": ["web-dev"], "action": ["PulumiUp"]}
    alarm_rule = rules["web-dev-rollback-alarms"]
    assert ALARM_EVENT["detail"]["alarmName"] in alarm_rule["detail"]["alarmName"]
    policy = json.loads(dev.one("aws:cloudwatch/logResourcePolicy:LogResourcePolicy").inputs["policyDocument"])
    assert policy["Statement"][0]["Principal"]["Service"] == ["events.amazonaws.com", "delivery.logs.amazonaws.com"]


def test_metric_filters_count_what_their_names_say(dev):
    filters = {f.inputs["name"]: f.inputs for f in dev.all("aws:cloudwatch/logMetricFilter:LogMetricFilter")}
    assert sorted(filters) == [
        "web-dev-DeploymentsFailed",
        "web-dev-DeploymentsStarted",
        "web-dev-DeploymentsSucceeded",
        "web-dev-Restores",
    ]
    # Deployments are the deploy action's runs: a failed test stage or a whole execution's state is not one.
    samples = (
        [action_event(s) for s in ("STARTED", "SUCCEEDED", "FAILED", "ABANDONED", "CANCELED")]
        + [action_event("FAILED", action="UnitTests"), pipeline_event("FAILED"), pipeline_event("SUCCEEDED")]
        + [ALARM_EVENT]
    )
    expected = {
        "web-dev-DeploymentsStarted": ["STARTED"],
        "web-dev-DeploymentsSucceeded": ["SUCCEEDED"],
        "web-dev-DeploymentsFailed": ["FAILED"],
        "web-dev-Restores": ["alarm"],
    }
    for name, inputs in filters.items():
        hits = [
            e["detail"]["state"] if e["source"] == "aws.codepipeline" else "alarm"
            for e in samples
            if matches(inputs["pattern"], e)
        ]
        assert hits == expected[name], name
        assert inputs["metricTransformation"]["namespace"] == "cicd/web-dev"
        assert inputs["metricTransformation"]["value"] == "1"


def test_restores_count_only_alarm_to_ok_transitions():
    going_bad = copy.deepcopy(ALARM_EVENT)
    going_bad["detail"]["state"]["value"], going_bad["detail"]["previousState"]["value"] = "ALARM", "OK"
    assert matches(delivery.RESTORED_PATTERN, ALARM_EVENT)
    assert not matches(delivery.RESTORED_PATTERN, going_bad)
    assert not matches(delivery.SUCCEEDED_PATTERN, ALARM_EVENT)


def time_to_restore_minutes(event):
    """The Logs Insights query's arithmetic, with its own regular expressions, in Python."""
    import re

    patterns = re.findall(r"parse (\S+) /(.+?)/ ", dashboard.TIME_TO_RESTORE_QUERY)
    assert [p[0] for p in patterns] == ["detail.previousState.timestamp", "detail.state.timestamp"]
    values = {}
    for field, regex in patterns:
        value = event
        for key in field.split("."):
            value = value[key]
        values.update({k: int(v) for k, v in re.search(regex.replace("(?<", "(?P<"), value).groupdict().items()})
    v = values
    return (
        ((v["h2"] * 3600 + v["m2"] * 60 + v["s2"]) - (v["h1"] * 3600 + v["m1"] * 60 + v["s1"]) + 86400) % 86400
    ) / 60


def test_time_to_restore_is_the_alarm_episode_length():
    assert round(time_to_restore_minutes(ALARM_EVENT), 2) == 16.13  # 10:04:40 to 10:20:48
    overnight = copy.deepcopy(ALARM_EVENT)
    overnight["detail"]["previousState"]["timestamp"] = "2026-11-20T23:58:00.000+0000"
    overnight["detail"]["state"]["timestamp"] = "2026-11-21T00:03:00.000+0000"
    assert time_to_restore_minutes(overnight) == 5
    assert "stats avg(minutes)" in dashboard.TIME_TO_RESTORE_QUERY


def test_filter_pattern_reader_rejects_what_it_cannot_read():
    with pytest.raises(ValueError):
        matches('{ $.a ~ "x" }', {})
    with pytest.raises(ValueError):
        matches("ERROR", {})


# -- X-Ray, notifications, drift ------------------------------------------------------------------


def test_xray_sampling_rule_and_group(prod, dev):
    rule = prod.one("aws:xray/samplingRule:SamplingRule").inputs
    assert (rule["ruleName"], rule["fixedRate"], rule["serviceName"]) == ("web-prd", 0.05, "web-prd")
    assert dev.one("aws:xray/samplingRule:SamplingRule").inputs["fixedRate"] == 0.2
    group = prod.one("aws:xray/group:Group").inputs
    assert group["filterExpression"] == 'service("web-prd")'
    task = prod.one("aws:ecs/taskDefinition:TaskDefinition").inputs
    app = json.loads(task["containerDefinitions"])[0]
    assert {"name": "XRAY_SAMPLING_RATE", "value": "0.05"} in app["environment"]


def test_pipeline_notifications(dev):
    rule = dev.one(
        "aws:codestarnotifications/notificationRule:NotificationRule", "monitoring-pipeline-notifications"
    ).inputs
    assert rule["resource"] == "arn:aws:codepipeline:us-east-1:123456789012:web-dev"
    assert sorted(rule["eventTypeIds"]) == sorted(monitoring.PIPELINE_EVENTS)


def test_drift_check_runs_daily_and_notifies_on_failure(dev):
    rules = {r.inputs["name"]: r.inputs for r in dev.all("aws:cloudwatch/eventRule:EventRule")}
    assert rules["web-dev-drift-schedule"]["scheduleExpression"].startswith("cron(")
    detected = json.loads(rules["web-dev-drift-detected"]["eventPattern"])
    assert detected["detail"] == {"project-name": ["web-dev-drift"], "build-status": ["FAILED"]}
    target = [
        t.inputs
        for t in dev.all("aws:cloudwatch/eventTarget:EventTarget")
        if t.inputs["arn"] == "arn:aws:sns:us-east-1:123456789012:web-dev-alerts"
    ][0]
    rendered = json.loads(target["inputTransformer"]["inputTemplate"].replace("<build>", "build-1"))
    assert "drifted" in rendered or "no longer matches git" in rendered
    drift = [p.inputs for p in dev.all("aws:codebuild/project:Project") if p.inputs["name"] == "web-dev-drift"][0]
    assert drift["source"]["buildspec"] == "buildspecs/drift.yml"


def test_drift_buildspec_expects_no_changes():
    import os

    import yaml
    from conftest import ROOT

    with open(os.path.join(ROOT, "buildspecs", "drift.yml"), encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)
    assert spec["version"] == 0.2
    assert any("pulumi preview --refresh --expect-no-changes" in c for c in spec["phases"]["build"]["commands"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_only_this_accounts_alarms_rules_and_notifications_may_publish_alerts(stack, request):
    """The confused-deputy guard AWS documents for service principals: without aws:SourceAccount, any
    account's alarm, rule or notification could publish to the topic."""
    plan = request.getfixturevalue(stack)
    policy = json.loads(plan.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])
    (publish,) = [s for s in policy["Statement"] if s.get("Sid") == "ServicesPublish"]
    assert sorted(publish["Principal"]["Service"]) == [
        "cloudwatch.amazonaws.com",
        "codestar-notifications.amazonaws.com",
        "events.amazonaws.com",
    ]
    assert publish["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    assert publish["Action"] == "sns:Publish"
    others = [s for s in policy["Statement"] if s.get("Effect") == "Allow" and s is not publish]
    assert all("Condition" in s for s in others)
