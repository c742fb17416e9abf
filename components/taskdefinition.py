"""What a task is: the app and X-Ray containers, their roles, their log group and their secrets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from .common import (
    AwsContext,
    Part,
    assume_role_policy,
    child_opts,
    key_by_alias,
    log_group,
    role_with_policy,
    stateful_opts,
)
from .facts import XRAY_DAEMON_PORT

if TYPE_CHECKING:
    from config import ServiceSettings

APP_CONTAINER = "app"
XRAY_CONTAINER = "xray-daemon"
APP_USER = "10001:10001"
XRAY_USER = "1337"
# The app's listen backlog; the kernel caps it at net.core.somaxconn (4096 on Fargate's kernels).
LISTEN_BACKLOG = 1024
# The first version of every service secret: not a secret, just something for ECS to inject until the
# team puts the real value (README, bootstrap).
SECRET_PLACEHOLDER = "placeholder: put the real value with aws secretsmanager put-secret-value"


def worker_threads(cpu: int) -> int:
    """Request threads for a task of `cpu` units: 32 per vCPU, at least 32 (requests mostly wait on I/O)."""
    return max(32, 32 * cpu // 1024)


@dataclass(frozen=True)
class TaskDefinitionArgs:
    """``service``: the validated `cicd:service` section (size, architecture, port, variables, secret
    names). ``image_ref`` runs as the app; ``xray_image`` comes through the stack's pull-through cache,
    whose repositories are under ``image_cache_prefix``/ (the execution role may pull from them and
    create them on a first pull). The task definition waits for ``images_ready``. ``protect``: the log
    group and the secrets are protected and retained."""

    context: AwsContext
    prefix: str
    service: ServiceSettings
    image_ref: pulumi.Input[str]
    repository_name: str
    xray_image: pulumi.Input[str]
    image_cache_prefix: str
    data_key_arn: pulumi.Input[str]
    data_key_alias: str
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    xray_sampling_rate: float
    # The account of ``repository_name`` when another's (a release promoted across accounts); "": this one.
    repository_account: str = ""
    images_ready: Sequence[pulumi.Resource] = ()
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class TaskDefinition(Part):
    """`task_definition`, `execution_role` and `task_role`, `log_group`, `secrets` and their
    `secret_placeholders` (the service must wait for those before its first task starts)."""

    def __init__(self, name: str, args: TaskDefinitionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:taskdefinition:TaskDefinition", name, opts)
        ctx = args.context
        self.log_group_name = f"/ecs/{args.prefix}"
        self.log_group = log_group(
            self,
            f"{name}-logs",
            log_group_name=self.log_group_name,
            retention_days=args.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        self.secrets: dict[str, aws.secretsmanager.Secret] = {}
        self.secret_placeholders: list[aws.secretsmanager.SecretVersion] = []
        for secret_name in args.service.secrets:
            # The real value is put out of band (`aws secretsmanager put-secret-value`), so it never
            # passes through Pulumi state or config. ECS cannot start a task whose secret has no
            # AWSCURRENT version, so each secret starts with a placeholder version that Pulumi then
            # leaves alone: the first `up` succeeds, and a real value replaces it without drift.
            resource_name = f"{name}-secret-{secret_name.lower().replace('_', '-')}"
            self.secrets[secret_name] = aws.secretsmanager.Secret(
                resource_name,
                name=f"{args.prefix}/{secret_name}",
                description=f"{secret_name} for the {args.prefix} service",
                kms_key_id=args.data_key_arn,
                recovery_window_in_days=30 if args.protect else 7,
                tags=dict(args.tags),
                opts=stateful_opts(self, args.protect),
            )
            self.secret_placeholders.append(
                aws.secretsmanager.SecretVersion(
                    f"{resource_name}-placeholder",
                    secret_id=self.secrets[secret_name].id,
                    secret_string=SECRET_PLACEHOLDER,
                    # A put-secret-value moves AWSCURRENT to the real version: neither the string nor the
                    # labels are Pulumi's after creation, and removing this resource never touches a label.
                    opts=child_opts(self, ignore_changes=["secretString", "versionStages"], retain_on_delete=True),
                )
            )
        trust = assume_role_policy(
            "ecs-tasks.amazonaws.com",
            {"StringEquals": {"aws:SourceAccount": ctx.account_id}, "ArnLike": {"aws:SourceArn": ctx.arn("ecs", "*")}},
        )
        self.execution_role = role_with_policy(
            self,
            f"{name}-execution",
            role_name=f"{args.prefix}-execution",
            description="Lets ECS pull the image, write logs and read the service's secrets",
            trust=trust,
            statements=self._execution_statements(args),
            tags=args.tags,
        )
        self.task_role = role_with_policy(
            self,
            f"{name}-task",
            role_name=f"{args.prefix}-task",
            description="The application's own permissions: sending traces to X-Ray",
            trust=trust,
            statements=[
                {
                    "Sid": "XRay",
                    "Effect": "Allow",
                    "Action": [
                        "xray:GetSamplingRules",
                        "xray:GetSamplingStatisticSummaries",
                        "xray:GetSamplingTargets",
                        "xray:PutTelemetryRecords",
                        "xray:PutTraceSegments",
                    ],
                    # X-Ray's write and sampling APIs have no resource-level permissions: AWS requires "*".
                    "Resource": "*",
                }
            ],
            tags=args.tags,
        )
        service = args.service
        self.task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=args.prefix,
            cpu=str(service.cpu),
            memory=str(service.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture=service.architecture
            ),
            execution_role_arn=self.execution_role.arn,
            task_role_arn=self.task_role.arn,
            container_definitions=container_definitions(args, self.log_group_name),
            # Fargate task storage, the only writable path with a read-only root filesystem.
            volumes=[aws.ecs.TaskDefinitionVolumeArgs(name="tmp")],
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=list(args.images_ready)),
        )
        self.register_outputs({"task_definition_arn": self.task_definition.arn})

    @staticmethod
    def _repository_arn(args: TaskDefinitionArgs) -> pulumi.Input[str]:
        ctx, name = args.context, args.repository_name
        if not args.repository_account:
            return ctx.arn("ecr", f"repository/{name}")
        # Another account's repository also admits this role in its own policy (components/image.py).
        return f"arn:{ctx.partition}:ecr:{ctx.region}:{args.repository_account}:repository/{name}"

    def _execution_statements(self, args: TaskDefinitionArgs) -> list[dict]:
        ctx = args.context
        cached = ctx.arn("ecr", f"repository/{args.image_cache_prefix}/*")
        log_group_arn = ctx.arn("logs", f"log-group:{self.log_group_name}")
        statements = [
            # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {
                "Sid": "EcrPull",
                "Effect": "Allow",
                "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": [self._repository_arn(args), cached],
            },
            # The first pull of a public image through the cache imports it and creates its repository.
            {
                "Sid": "EcrPullThroughCache",
                "Effect": "Allow",
                "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
                "Resource": cached,
            },
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": pulumi.Output.concat(log_group_arn, ":log-stream:*"),
            },
            key_by_alias(ctx, args.data_key_alias, ["kms:Decrypt"], sid="DecryptImageLayersAndSecrets"),
        ]
        if args.service.secrets:
            statements.append(
                {
                    "Sid": "Secrets",
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    # Secrets Manager appends six random characters to a secret's ARN.
                    "Resource": [
                        ctx.arn("secretsmanager", f"secret:{args.prefix}/{s}-??????") for s in args.service.secrets
                    ],
                }
            )
        return statements


def container_definitions(args: TaskDefinitionArgs, log_group_name: str) -> pulumi.Output[str]:
    """The app (non-root, read-only root, no capabilities) and the X-Ray daemon beside it."""
    service = args.service
    log_options = {"awslogs-group": log_group_name, "awslogs-region": args.context.region}
    environment = [{"name": k, "value": v} for k, v in sorted(service.environment.items())]
    environment += [
        {"name": "AWS_XRAY_DAEMON_ADDRESS", "value": f"127.0.0.1:{XRAY_DAEMON_PORT}"},
        # The sample service's listen backlog and thread pool, sized for the task (app/service/server.py).
        {"name": "LISTEN_BACKLOG", "value": str(LISTEN_BACKLOG)},
        {"name": "PORT", "value": str(service.container_port)},
        {"name": "SERVICE_NAME", "value": args.prefix},
        {"name": "WORKER_THREADS", "value": str(worker_threads(service.cpu))},
        {"name": "XRAY_SAMPLING_RATE", "value": str(args.xray_sampling_rate)},
    ]
    app = {
        "name": APP_CONTAINER,
        "image": args.image_ref,
        "essential": True,
        "user": APP_USER,
        "readonlyRootFilesystem": True,
        "privileged": False,
        "linuxParameters": {"capabilities": {"drop": ["ALL"]}, "initProcessEnabled": True},
        "portMappings": [{"name": "http", "containerPort": service.container_port, "protocol": "tcp"}],
        "environment": environment,
        # By name: ECS resolves a secret in the task's own region from its name.
        "secrets": [{"name": s, "valueFrom": f"{args.prefix}/{s}"} for s in service.secrets],
        "mountPoints": [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}],
        "healthCheck": {
            "command": ["CMD", "python", "-m", "service.healthcheck"],
            "interval": 10,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 15,
        },
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {**log_options, "awslogs-stream-prefix": APP_CONTAINER},
        },
        "dependsOn": [{"containerName": XRAY_CONTAINER, "condition": "START"}],
    }
    xray = {
        "name": XRAY_CONTAINER,
        "image": args.xray_image,
        "essential": False,
        "user": XRAY_USER,
        "readonlyRootFilesystem": True,
        "privileged": False,
        "linuxParameters": {"capabilities": {"drop": ["ALL"]}},
        "cpu": 32,
        "memoryReservation": 64,
        "portMappings": [{"containerPort": XRAY_DAEMON_PORT, "protocol": "udp"}],
        "command": ["--region", args.context.region, "--local-mode"],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {**log_options, "awslogs-stream-prefix": XRAY_CONTAINER},
        },
    }
    return pulumi.Output.json_dumps([app, xray])
