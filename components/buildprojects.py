"""One CodeBuild project per job, each with its own log group and least-privilege role."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .common import AwsContext, Part, assume_role_policy, child_opts, key_by_alias, log_group, role_with_policy
from .facts import KMS_READ_WRITE
from .jobs import Project

BUILD_IMAGES = {
    "ARM64": ("ARM_CONTAINER", "aws/codebuild/amazonlinux-aarch64-standard:3.0"),
    "X86_64": ("LINUX_CONTAINER", "aws/codebuild/amazonlinux-x86_64-standard:5.0"),
}
AUTO_DISCOVER = "CODEBUILD_CONFIG_AUTO_DISCOVER"


@dataclass(frozen=True)
class BuildProjectsArgs:
    """``jobs``: what to create (components/jobs.py). Pipeline jobs read and write ``artifacts_arn``;
    the others clone the repository themselves: CodeCommit through ``clone_url``, GitHub through
    ``connection_arn``, or (source ``s3``) read the release bundle at ``s3_location``. Every project
    runs on ``architecture`` and encrypts with ``data_key_arn``."""

    context: AwsContext
    prefix: str
    jobs: Sequence[Project]
    architecture: str
    source: str
    artifacts_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    data_key_alias: str
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    clone_url: pulumi.Input[str] | None = None
    # With source "s3" (a promoting stack): the bundle the jobs outside the pipeline run, bucket/key.
    s3_location: pulumi.Input[str] | None = None
    github_repository: str = ""
    connection_arn: str = ""
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


class BuildProjects(Part):
    """`projects`: the CodeBuild project of each job, by its role (`unit-tests`, `deploy`, ...)."""

    def __init__(self, name: str, args: BuildProjectsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:buildprojects:BuildProjects", name, opts)
        self.projects = {job.role: self._project(name, args, job) for job in args.jobs}
        self.register_outputs({"projects": {role: p.name for role, p in self.projects.items()}})

    def _project(self, name: str, args: BuildProjectsArgs, job: Project) -> aws.codebuild.Project:
        ctx = args.context
        project_name = f"{args.prefix}-{job.role}"
        log_group_name = f"/aws/codebuild/{project_name}"
        logs = log_group(
            self,
            f"{name}-{job.role}-logs",
            log_group_name=log_group_name,
            retention_days=args.log_retention_days,
            kms_key_arn=args.logs_key_arn,
            protect=args.protect,
            tags=args.tags,
        )
        statements: list[Mapping[str, Any]] = [
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": ctx.arn("logs", f"log-group:{log_group_name}:log-stream:*"),
            },
            key_by_alias(ctx, args.data_key_alias, KMS_READ_WRITE),
        ]
        if job.in_pipeline:
            statements.append(
                {
                    "Sid": "Artifacts",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                    "Resource": pulumi.Output.concat(args.artifacts_arn, "/*"),
                }
            )
        role = role_with_policy(
            self,
            f"{name}-{job.role}",
            role_name=f"{project_name}-build",
            description=f"CodeBuild {project_name}: {job.description}",
            trust=assume_role_policy(
                "codebuild.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ctx.account_id}}
            ),
            statements=[*statements, *job.statements],
            tags=args.tags,
        )
        build_type, image = BUILD_IMAGES[args.architecture]
        # CodeBuild adds CODEBUILD_CONFIG_AUTO_DISCOVER=true to every new project (report auto-discovery);
        # declaring it keeps the next day's drift check from seeing a change (pulumi/pulumi-aws#3839).
        environment = {AUTO_DISCOVER: "true", **job.environment}
        variables = [
            aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=k, value=v, type="PLAINTEXT")
            for k, v in sorted(environment.items())
        ]
        variables += [
            aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=k, value=v, type="SECRETS_MANAGER")
            for k, v in sorted(job.secrets.items())
        ]
        if job.in_pipeline:
            source = aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=job.buildspec)
            artifacts = aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE")
        else:
            source = _standalone_source(args, job.buildspec)
            artifacts = aws.codebuild.ProjectArtifactsArgs(type="NO_ARTIFACTS")
        modes = ["LOCAL_SOURCE_CACHE", "LOCAL_CUSTOM_CACHE"]
        if job.privileged:
            modes.insert(0, "LOCAL_DOCKER_LAYER_CACHE")
        return aws.codebuild.Project(
            f"{name}-{job.role}",
            name=project_name,
            description=job.description,
            service_role=role.arn,
            source=source,
            artifacts=artifacts,
            environment=aws.codebuild.ProjectEnvironmentArgs(
                compute_type="BUILD_GENERAL1_SMALL",
                image=image,
                type=build_type,
                image_pull_credentials_type="CODEBUILD",
                privileged_mode=job.privileged,
                environment_variables=variables,
            ),
            encryption_key=args.data_key_arn,
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    status="ENABLED", group_name=log_group_name
                ),
                s3_logs=aws.codebuild.ProjectLogsConfigS3LogsArgs(status="DISABLED"),
            ),
            cache=aws.codebuild.ProjectCacheArgs(type="LOCAL", modes=modes),
            build_timeout=job.timeout_minutes,
            queued_timeout=60,
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=[logs]),
        )


def _standalone_source(args: BuildProjectsArgs, buildspec: str) -> aws.codebuild.ProjectSourceArgs:
    if args.source == "s3":
        return aws.codebuild.ProjectSourceArgs(type="S3", location=args.s3_location, buildspec=buildspec)
    if args.source == "codecommit":
        return aws.codebuild.ProjectSourceArgs(
            type="CODECOMMIT", location=args.clone_url, buildspec=buildspec, git_clone_depth=1
        )
    return aws.codebuild.ProjectSourceArgs(
        type="GITHUB",
        location=f"https://github.com/{args.github_repository}.git",
        buildspec=buildspec,
        git_clone_depth=1,
        auth=aws.codebuild.ProjectSourceAuthArgs(type="CODECONNECTIONS", resource=args.connection_arn),
    )
