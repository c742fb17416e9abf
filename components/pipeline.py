"""The build pipeline: a git push becomes a tested, scanned, approved release.

CodePipeline V2: Source -> Test & Scan (unit tests | SonarQube quality gate | Trivy fs/config, in
parallel) -> Image (build, Trivy image scan, push <git sha>) -> [manual approval] -> Deploy
(`pulumi preview --policy-pack policy`, then `pulumi up` with the pushed digest). Each CodeBuild
project has its own least-privilege role; the Pulumi jobs assume the configured deploy role.
Pull requests get a preview job that comments on the pull request; a daily job checks for drift.

A composition: the artifact bucket and the token secrets here, then the build projects, the
pipeline, the drift check and the pull-request previews, each a component of its own. Until
session 3 their resources were children of BuildPipeline; they keep their URNs through aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_aws as aws

from .bucket import private_bucket
from .buildprojects import BUILD_IMAGES, BuildProjects, BuildProjectsArgs
from .common import AwsContext, child_opts, other_account_roles, policy_document, role_with_policy, stateful_opts
from .drift import DriftDetection, DriftDetectionArgs
from .jobs import JobContext, pipeline_jobs
from .previews import PullRequestPreviews, PullRequestPreviewsArgs
from .release import reader_role_name, release_parameter, releases_bucket_name
from .releasepipeline import ReleasePipeline, ReleasePipelineArgs

if TYPE_CHECKING:
    from config import PipelineSettings

ARTIFACT_EXPIRY_DAYS = 30


@dataclass(frozen=True)
class BuildPipelineArgs:
    """Inputs of a BuildPipeline.

    ``pipeline``: the validated `cicd:pipeline` section (source, branch, approval, the Pulumi backend
    and roles, SonarQube, Trivy). ``stack``: the Pulumi stack the deploy job updates.
    ``clone_url``: the CodeCommit repository the jobs outside the pipeline clone (required with
    CodeCommit). ``data_key_alias`` scopes KMS permissions by alias, known at preview.
    ``notification_topic_arn`` is the topic itself (so the engine creates it first);
    ``notification_topic_policy_arn`` the same ARN from known parts, for IAM documents;
    ``notification_key_alias`` the alias of the key that encrypts the topic.
    ``deploy_timeout_minutes``: the deploy job's build timeout (5..2160); default 60.
    ``access_log_bucket``: where the artifact and releases buckets' S3 access logs go; default none.
    ``xray_image``: the image job pulls it once through the stack's cache (``image_cache_prefix``), so
    the cache holds it before any task in an isolated subnet needs it.
    """

    context: AwsContext
    prefix: str
    stack: str
    project: str
    environment: str
    service_name: str
    pipeline: PipelineSettings
    ecr_repository_name: str
    architecture: str
    data_key_arn: pulumi.Input[str]
    data_key_alias: str
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    notification_topic_arn: pulumi.Input[str]
    notification_topic_policy_arn: pulumi.Input[str]
    notification_key_alias: str
    xray_image: pulumi.Input[str]
    image_cache_prefix: str
    clone_url: pulumi.Input[str] | None = None
    # The alarms whose silence after a deploy makes it a release (the service's rollback alarms).
    rollback_alarm_names: Sequence[str] = ()
    # A promoting stack's upstream: its physical-name prefix and data key alias.
    upstream_prefix: str = ""
    upstream_data_key_alias: str = ""
    # The environments that promote this stack's releases (they run its images and bundles).
    promoted_to: Sequence[str] = ()
    # Promotion across accounts (cicd:accountId): the upstream's account ID, or the downstream
    # environments in other accounts as {environment: (account ID, physical-name prefix)}.
    upstream_account: str = ""
    downstreams: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    deploy_timeout_minutes: int = 60
    access_log_bucket: pulumi.Input[str] | None = None
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in BUILD_IMAGES:
            raise ValueError(f"BuildPipelineArgs.architecture must be one of {', '.join(BUILD_IMAGES)}")
        if not self.pipeline.builds and not (self.upstream_prefix and self.upstream_data_key_alias):
            raise ValueError("BuildPipelineArgs.upstream_prefix and upstream_data_key_alias are required to promote")
        if self.pipeline.builds and self.pipeline.source == "codecommit" and self.clone_url is None:
            raise ValueError("BuildPipelineArgs.clone_url is required with codecommit (the PR preview clones it)")
        if not 5 <= self.deploy_timeout_minutes <= 2160:
            raise ValueError(
                "BuildPipelineArgs.deploy_timeout_minutes must be 5..2160 (CodeBuild's range); "
                f"got {self.deploy_timeout_minutes}"
            )

    @property
    def pulumi_cloud(self) -> bool:
        return self.pipeline.backend_url.startswith("https://")


class BuildPipeline(pulumi.ComponentResource):
    """Artifact bucket and token secrets, the build projects, the pipeline, drift check and PR previews."""

    def __init__(self, name: str, args: BuildPipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:pipeline:BuildPipeline", name, None, opts)
        ctx, settings = args.context, args.pipeline
        codecommit = settings.builds and settings.source == "codecommit"
        repository_arn = ctx.arn("codecommit", settings.repository_name) if codecommit else None
        self.artifacts = self._artifacts(name, args)
        # Every release this environment records: the history, and the source bundle each was built from.
        self.releases = private_bucket(
            self,
            f"{name}-releases",
            bucket_name=releases_bucket_name(args.prefix, ctx.account_id),
            partition=ctx.partition,
            expiration_days=None,  # the release history is kept
            # Another stack deploys and rolls back to this stack's bundles: kept while it does.
            protect=args.protect or bool(args.promoted_to),
            tags=args.tags,
            kms_key_arn=args.data_key_arn,
            statements=lambda arn: _upstream_copies(args, arn),
        )
        self._log_access(f"{name}-releases", self.releases.name, args)
        if args.upstream_account or set(args.promoted_to) - set(args.downstreams):
            # A new `<env>/latest.zip` starts the downstream pipeline (the upstream's copy in this
            # stack's bucket, or this stack's own for a downstream in this account): S3 tells EventBridge.
            aws.s3.BucketNotification(
                f"{name}-releases-events", bucket=self.releases.name, eventbridge=True, opts=child_opts(self)
            )
        self.release_parameter = release_parameter(args.project, args.service_name, args.environment)
        # An upstream in this account keeps the bundles in its own bucket; one in another account
        # copies them into this stack's (its release job, `_upstream_copies`).
        upstream_bucket = (
            None
            if settings.builds
            else self.releases.name
            if args.upstream_account
            else releases_bucket_name(args.upstream_prefix, ctx.account_id)
        )
        upstream_parameter = (
            release_parameter(args.project, args.service_name, settings.promote_from) if not settings.builds else ""
        )
        reader = reader_role_name(args.upstream_prefix, args.prefix)
        upstream_reader = (
            f"arn:{ctx.partition}:iam::{args.upstream_account}:role/{reader}" if args.upstream_account else None
        )
        for env, (account, downstream_prefix) in sorted(args.downstreams.items()):
            self._serve_downstream(name, args, env, account, downstream_prefix)
        jobs = JobContext(
            secret_names=self._token_secrets(name, args),
            repository_arn=repository_arn,
            ecr_repository_uri=pulumi.Output.concat(
                ctx.account_id, ".dkr.ecr.", ctx.region, ".", ctx.dns_suffix, "/", args.ecr_repository_name
            ),
            releases_bucket=self.releases.name,
            release_parameter=self.release_parameter,
            upstream_releases_bucket=upstream_bucket,
            upstream_release_parameter=upstream_parameter,
            upstream_reader_role_arn=upstream_reader,
            downstream_buckets={
                env: releases_bucket_name(downstream_prefix, account)
                for env, (account, downstream_prefix) in sorted(args.downstreams.items())
            },
        )
        builds = BuildProjects(
            name,
            BuildProjectsArgs(
                context=ctx,
                prefix=args.prefix,
                jobs=pipeline_jobs(args, jobs),
                architecture=args.architecture,
                source=settings.source if settings.builds else "s3",
                # A promoting stack's drift check runs the source of the release the stack runs.
                s3_location=None
                if settings.builds
                else pulumi.Output.concat(self.releases.name, f"/{args.environment}/current.zip"),
                artifacts_arn=self.artifacts.arn,
                data_key_arn=args.data_key_arn,
                data_key_alias=args.data_key_alias,
                logs_key_arn=args.logs_key_arn,
                log_retention_days=args.log_retention_days,
                clone_url=args.clone_url,
                github_repository=settings.github_repository,
                connection_arn=settings.connection_arn,
                protect=args.protect,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        self.projects = builds.projects
        release = ReleasePipeline(
            name,
            ReleasePipelineArgs(
                context=ctx,
                prefix=args.prefix,
                stack=args.stack,
                settings=settings,
                projects=self.projects,
                artifacts_bucket=self.artifacts.name,
                artifacts_arn=self.artifacts.arn,
                data_key_arn=args.data_key_arn,
                data_key_alias=args.data_key_alias,
                notification_topic_arn=args.notification_topic_arn,
                notification_topic_policy_arn=args.notification_topic_policy_arn,
                notification_key_alias=args.notification_key_alias,
                repository_arn=repository_arn,
                upstream_releases_bucket=upstream_bucket,
                upstream_release_parameter=upstream_parameter,
                upstream_data_key_alias=args.upstream_data_key_alias,
                upstream_account=args.upstream_account,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        self.pipeline = release.pipeline
        self.pipeline_name = release.name
        self.stage_names = release.stage_names
        DriftDetection(
            name,
            DriftDetectionArgs(
                context=ctx,
                prefix=args.prefix,
                stack=args.stack,
                project_arn=self.projects["drift"].arn,
                topic_arn=args.notification_topic_arn,
                tags=args.tags,
            ),
            opts=child_opts(self),
        )
        if codecommit:
            PullRequestPreviews(
                name,
                PullRequestPreviewsArgs(
                    context=ctx,
                    prefix=args.prefix,
                    branch=settings.branch,
                    repository_arn=repository_arn,
                    project_arn=self.projects["preview"].arn,
                    tags=args.tags,
                ),
                opts=child_opts(self),
            )
        self.register_outputs(
            {
                "pipeline_name": self.pipeline_name,
                "artifact_bucket": self.artifacts.name,
                "projects": {role: p.name for role, p in self.projects.items()},
            }
        )

    def _serve_downstream(self, name: str, args: BuildPipelineArgs, env: str, account: str, prefix: str) -> None:
        """A stack in another account promotes this one's releases: roles there may read the record's
        history through a role here (its deploy and choose jobs check a release against it). Its pipeline starts
        on the bundle the release job copies into its bucket (no event crosses the accounts)."""
        ctx = args.context
        role_with_policy(
            self,
            f"{name}-reader-{env}",
            role_name=reader_role_name(args.prefix, prefix),
            description=f"Lets the {env} deploy jobs in account {account} read the releases {args.prefix} recorded",
            trust=policy_document(
                [
                    {
                        "Effect": "Allow",
                        # Its deploy job, and the job that shows its approver the release (with an approval).
                        **other_account_roles(
                            ctx.partition, [(account, f"{prefix}-deploy-build"), (account, f"{prefix}-choose-build")]
                        ),
                        "Action": "sts:AssumeRole",
                    }
                ]
            ),
            statements=[
                {
                    "Sid": "ReleaseHistory",
                    "Effect": "Allow",
                    "Action": "ssm:GetParameterHistory",
                    "Resource": ctx.arn("ssm", f"parameter{self.release_parameter}"),
                }
            ],
            tags=args.tags,
        )

    def _artifacts(self, name: str, args: BuildPipelineArgs):
        artifacts = private_bucket(
            self,
            f"{name}-artifacts",
            bucket_name=pulumi.Output.concat(args.prefix, "-artifacts-", args.context.account_id),
            partition=args.context.partition,
            expiration_days=ARTIFACT_EXPIRY_DAYS,
            protect=False,  # build artifacts are reproducible from git
            tags=args.tags,
            kms_key_arn=args.data_key_arn,
        )
        self._log_access(f"{name}-artifacts", artifacts.name, args)
        return artifacts

    def _log_access(self, name: str, bucket: pulumi.Output[str], args: BuildPipelineArgs) -> None:
        """S3 server access logs of a bucket, under `s3/<bucket>/` in the stack's access-log bucket."""
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-logging",
                bucket=bucket,
                target_bucket=args.access_log_bucket,
                target_prefix=pulumi.Output.concat("s3/", bucket, "/"),
                opts=child_opts(self),
            )

    def _token_secrets(self, name: str, args: BuildPipelineArgs) -> dict[str, str]:
        """Tokens the jobs read, created empty: their values are put out of band, never in state."""
        settings = args.pipeline
        names = {"sonar-token": "SonarQube token that runs analyses of this project"} if settings.builds else {}
        if args.pulumi_cloud:
            names["pulumi-access-token"] = "Pulumi Cloud access token of the deploy and drift jobs"
            if settings.builds and settings.preview_role_arn and settings.source == "codecommit":
                # Pull-request code runs in the preview: it gets a token of its own, which the README
                # asks to be one that can only read the stack.
                names["pulumi-preview-token"] = "Pulumi Cloud token with read access only, for pull-request previews"
        for key, description in names.items():
            aws.secretsmanager.Secret(
                f"{name}-{key}",
                name=f"{args.prefix}/{key}",
                description=description,
                kms_key_id=args.data_key_arn,
                recovery_window_in_days=30 if args.protect else 7,
                tags=dict(args.tags),
                opts=stateful_opts(self, args.protect),
            )
        return {key: f"{args.prefix}/{key}" for key in names}


def _upstream_copies(args: BuildPipelineArgs, bucket_arn: pulumi.Output[str]) -> list[dict]:
    """An upstream in another account copies its release bundles under `<upstream>/` in this stack's
    releases bucket: its release job's role may put objects there and nothing else."""
    if not args.upstream_account:
        return []
    release_job = (args.upstream_account, f"{args.upstream_prefix}-release-build")
    return [
        {
            "Sid": "UpstreamReleaseCopies",
            "Effect": "Allow",
            **other_account_roles(args.context.partition, [release_job]),
            "Action": "s3:PutObject",
            "Resource": pulumi.Output.concat(bucket_arn, f"/{args.pipeline.promote_from}/*"),
        }
    ]
