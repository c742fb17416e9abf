"""The CodePipeline V2 pipeline: Source -> Test & Scan (three jobs in parallel) -> Image ->
[manual approval] -> Deploy, started by every push to the release branch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from .common import AwsContext, Part, assume_role_policy, child_opts, key_by_alias, role_with_policy
from .events import event_rule
from .facts import KMS_PUBLISH, KMS_READ_WRITE

if TYPE_CHECKING:
    from config import PipelineSettings


@dataclass(frozen=True)
class ReleasePipelineArgs:
    """``settings``: the validated `cicd:pipeline` section (source, branch, approval). ``projects``:
    the CodeBuild projects by job role; the pipeline may start exactly those it runs. Artifacts go to
    ``artifacts_bucket`` encrypted with ``data_key_arn``. An approval notifies
    ``notification_topic_arn`` (``notification_topic_policy_arn`` is the same ARN from known parts,
    for the role's policy; ``notification_key_alias`` the topic's key)."""

    context: AwsContext
    prefix: str
    stack: str
    settings: PipelineSettings
    projects: Mapping[str, aws.codebuild.Project]
    artifacts_bucket: pulumi.Input[str]
    artifacts_arn: pulumi.Input[str]
    data_key_arn: pulumi.Input[str]
    data_key_alias: str
    notification_topic_arn: pulumi.Input[str]
    notification_topic_policy_arn: pulumi.Input[str]
    notification_key_alias: str
    repository_arn: pulumi.Input[str] | None = None
    # A promoting stack's pipeline starts from the newest release of its upstream environment: the
    # bundle `<upstream>/latest.zip` in the upstream's releases bucket (encrypted with the key of
    # ``upstream_data_key_alias``), whenever that object is written (after ``upstream_release_parameter``).
    upstream_releases_bucket: pulumi.Input[str] | None = None
    upstream_release_parameter: str = ""
    upstream_data_key_alias: str = ""
    # An upstream in another account (its account ID): its release job copies the bundles into this
    # stack's releases bucket (``upstream_releases_bucket`` is then this stack's own).
    upstream_account: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)


class ReleasePipeline(Part):
    """`pipeline` (the resource), its known `name` and `stage_names`."""

    def __init__(self, name: str, args: ReleasePipelineArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cicd:releasepipeline:ReleasePipeline", name, opts)
        settings = args.settings
        self.name = args.prefix
        stages, runs = _stages(args)
        self.stage_names = [s.name for s in stages]
        role = role_with_policy(
            self,
            f"{name}-pipeline",
            role_name=f"{args.prefix}-pipeline",
            description=f"CodePipeline {self.name}: moves artifacts and starts the builds",
            trust=assume_role_policy(
                "codepipeline.amazonaws.com", {"StringEquals": {"aws:SourceAccount": args.context.account_id}}
            ),
            statements=_statements(args, runs),
            tags=args.tags,
        )
        triggers = None
        if settings.builds and settings.source == "github":
            git = aws.codepipeline.PipelineTriggerGitConfigurationArgs(
                source_action_name="Source",
                pushes=[
                    aws.codepipeline.PipelineTriggerGitConfigurationPushArgs(
                        branches=aws.codepipeline.PipelineTriggerGitConfigurationPushBranchesArgs(
                            includes=[settings.branch]
                        )
                    )
                ],
            )
            triggers = [
                aws.codepipeline.PipelineTriggerArgs(provider_type="CodeStarSourceConnection", git_configuration=git)
            ]
        self.pipeline = aws.codepipeline.Pipeline(
            f"{name}-pipeline",
            name=self.name,
            pipeline_type="V2",
            # A building stack releases every push, one at a time and in order: a newer push waits. A
            # promoting stack deploys the newest release: a newer one supersedes older executions
            # waiting to enter a stage (the one at the approval stays until approved or rejected).
            execution_mode="QUEUED" if settings.builds else "SUPERSEDED",
            role_arn=role.arn,
            artifact_stores=[
                aws.codepipeline.PipelineArtifactStoreArgs(
                    location=args.artifacts_bucket,
                    type="S3",
                    encryption_key=aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs(
                        id=args.data_key_arn, type="KMS"
                    ),
                )
            ],
            stages=stages,
            triggers=triggers,
            # `aws codepipeline start-pipeline-execution --variables name=RELEASE,value=<commit>` deploys
            # an earlier release through the same gates (README: rollback); the default is the newest.
            variables=[
                aws.codepipeline.PipelineVariableArgs(
                    name="RELEASE", default_value="latest", description="the commit of the release to deploy"
                )
            ]
            if not settings.builds
            else None,
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=list(args.projects.values())),
        )
        if not settings.builds:
            # The upstream's release job writes its newest bundle, `<upstream>/latest.zip`, after the
            # record it is checked against (in the upstream's bucket, or copied into this stack's from
            # another account); S3 tells EventBridge of that object, at least once. (Parameter Store's
            # change events, which started it before, are sent "on a best effort basis".)
            pattern: dict[str, Any] = {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {
                    "bucket": {"name": [args.upstream_releases_bucket]},
                    "object": {"key": [f"{settings.promote_from}/latest.zip"]},
                },
            }
            event_rule(
                self,
                name,
                "on-release",
                f"Starts {self.name} when {settings.promote_from} records a release",
                context=args.context,
                prefix=args.prefix,
                target_arn=self.pipeline.arn,
                pattern=pattern,
                start=("codepipeline:StartPipelineExecution", args.context.arn("codepipeline", self.name)),
                tags=args.tags,
            )
        elif settings.source == "codecommit":
            # CodePipeline V2 triggers serve connection sources only; CodeCommit pushes arrive as events.
            event_rule(
                self,
                name,
                "on-push",
                f"Starts {self.name} on every push to {settings.branch}",
                context=args.context,
                prefix=args.prefix,
                target_arn=self.pipeline.arn,
                pattern={
                    "source": ["aws.codecommit"],
                    "detail-type": ["CodeCommit Repository State Change"],
                    "resources": [args.repository_arn],
                    "detail": {
                        "event": ["referenceCreated", "referenceUpdated"],
                        "referenceType": ["branch"],
                        "referenceName": [settings.branch],
                    },
                },
                start=("codepipeline:StartPipelineExecution", args.context.arn("codepipeline", self.name)),
                tags=args.tags,
            )
        self.register_outputs({"pipeline_name": self.name, "pipeline_arn": self.pipeline.arn})


def _stages(args: ReleasePipelineArgs) -> tuple[list[aws.codepipeline.PipelineStageArgs], list[str]]:
    """The stages, and the job roles they run (in order)."""
    runs: list[str] = []

    def build(name: str, role: str, **kw: Any) -> aws.codepipeline.PipelineStageActionArgs:
        runs.append(role)
        return _build_action(args.projects[role].name, name, **kw)

    execution = {"EXECUTION_ID": "#{codepipeline.PipelineExecutionId}"}
    if not args.settings.builds:
        # Never builds: the upstream's release (image digest and the source it was built from).
        upstream = args.settings.promote_from
        stages = [aws.codepipeline.PipelineStageArgs(name="Source", actions=[_release_source(args)])]
        release = "#{variables.RELEASE}"
        if args.settings.require_approval:
            # The approver sees the release this execution deploys (`latest`, or a rollback's commit):
            # a job finds and verifies it first, and the deploy then takes exactly that commit.
            choose = build(
                "ChooseRelease",
                "choose",
                namespace="ChosenRelease",
                variables={"RELEASE": release},
            )
            where = f", read with credentials of account {args.upstream_account}" if args.upstream_account else ""
            stages.append(
                _approval(
                    args,
                    f"Promote {upstream}'s release of commit #{{ChosenRelease.RELEASE_COMMIT}} to {args.stack}: "
                    "image #{ChosenRelease.RELEASE_IMAGE}, bundle sha256 #{ChosenRelease.RELEASE_BUNDLE_SHA256} "
                    f"(RELEASE={release}; checked against {upstream}'s record {args.upstream_release_parameter}"
                    f"{where})",
                    before=[choose],
                )
            )
            release = "#{ChosenRelease.RELEASE_COMMIT}"
        deploy = build(
            "PulumiUp",
            "deploy",
            namespace="DeployVariables",
            variables={"RELEASE": release, **execution},
        )
        stages.append(aws.codepipeline.PipelineStageArgs(name="Deploy", actions=[deploy]))
        deployed = {"DEPLOYED_COMMIT": "#{DeployVariables.DEPLOYED_COMMIT}"}
        record = build("Record", "release", namespace="ReleaseVariables", variables={**deployed, **execution})
        stages.append(aws.codepipeline.PipelineStageArgs(name="Release", actions=[record]))
        return stages, runs
    sha = {"GIT_SHA": "#{SourceVariables.CommitId}"}
    stages = [
        aws.codepipeline.PipelineStageArgs(name="Source", actions=[_source_action(args.settings)]),
        aws.codepipeline.PipelineStageArgs(
            name="TestAndScan",
            actions=[
                # One run order: the three scans run in parallel and all must pass.
                build("UnitTests", "unit-tests", variables=sha),
                build("SonarQube", "sonarqube", variables=sha),
                build("Trivy", "trivy", variables=sha),
            ],
        ),
        aws.codepipeline.PipelineStageArgs(
            name="Image", actions=[build("BuildScanPush", "image", namespace="ImageVariables", variables=sha)]
        ),
    ]
    if args.settings.require_approval:
        stages.append(_approval(args, f"Release #{{ImageVariables.IMAGE_URI}} to {args.stack}?"))
    image = {"IMAGE_URI": "#{ImageVariables.IMAGE_URI}"}
    deploy = build("PulumiUp", "deploy", variables={**image, **sha})
    stages.append(aws.codepipeline.PipelineStageArgs(name="Deploy", actions=[deploy]))
    # The commit's time (CodeCommit and connections both report it) is where lead time starts.
    committed = {
        "COMMITTED_AT": "#{SourceVariables.CommitterDate}"
        if args.settings.source == "codecommit"
        else "#{SourceVariables.AuthorDate}"
    }
    record = build(
        "Record", "release", namespace="ReleaseVariables", variables={**image, **sha, **committed, **execution}
    )
    stages.append(aws.codepipeline.PipelineStageArgs(name="Release", actions=[record]))
    return stages, runs


# CodePipeline's limit on an action configuration value, such as an approval's CustomData.
CUSTOM_DATA_MAX = 1000


def _approval(
    args: ReleasePipelineArgs,
    question: str,
    before: Sequence[aws.codepipeline.PipelineStageActionArgs] = (),
) -> aws.codepipeline.PipelineStageArgs:
    """The approval stage: `before` (run order 1) first, whose variables the question may show."""
    if len(question) > CUSTOM_DATA_MAX:
        raise ValueError(
            f"the approval's CustomData is {len(question)} characters; CodePipeline allows {CUSTOM_DATA_MAX}"
        )
    approve = aws.codepipeline.PipelineStageActionArgs(
        name="ApproveRelease",
        category="Approval",
        owner="AWS",
        provider="Manual",
        version="1",
        configuration={"NotificationArn": args.notification_topic_arn, "CustomData": question},
        run_order=2 if before else 1,
    )
    return aws.codepipeline.PipelineStageArgs(name="Approval", actions=[*before, approve])


def _release_source(args: ReleasePipelineArgs) -> aws.codepipeline.PipelineStageActionArgs:
    return aws.codepipeline.PipelineStageActionArgs(
        name="Source",
        category="Source",
        owner="AWS",
        provider="S3",
        version="1",
        output_artifacts=["source"],
        configuration={
            "S3Bucket": args.upstream_releases_bucket,
            "S3ObjectKey": f"{args.settings.promote_from}/latest.zip",
            # The rule on the upstream's newest bundle starts the pipeline; polling would only add delay.
            "PollForSourceChanges": "false",
        },
        namespace="SourceVariables",
    )


def _build_action(
    project_name: pulumi.Input[str],
    name: str,
    *,
    namespace: str | None = None,
    variables: Mapping[str, str] | None = None,
) -> aws.codepipeline.PipelineStageActionArgs:
    configuration = {"ProjectName": project_name}
    env = [{"name": k, "value": v, "type": "PLAINTEXT"} for k, v in (variables or {}).items()]
    if env:
        configuration["EnvironmentVariables"] = json.dumps(env)
    return aws.codepipeline.PipelineStageActionArgs(
        name=name,
        category="Build",
        owner="AWS",
        provider="CodeBuild",
        version="1",
        input_artifacts=["source"],
        configuration=configuration,
        run_order=1,
        namespace=namespace,
    )


def _source_action(settings: PipelineSettings) -> aws.codepipeline.PipelineStageActionArgs:
    if settings.source == "codecommit":
        configuration = {
            "RepositoryName": settings.repository_name,
            "BranchName": settings.branch,
            # An EventBridge rule starts the pipeline; polling would only add delay.
            "PollForSourceChanges": "false",
            "OutputArtifactFormat": "CODE_ZIP",
        }
        provider = "CodeCommit"
    else:
        configuration = {
            "ConnectionArn": settings.connection_arn,
            "FullRepositoryId": settings.github_repository,
            "BranchName": settings.branch,
            "OutputArtifactFormat": "CODE_ZIP",
        }
        provider = "CodeStarSourceConnection"
    return aws.codepipeline.PipelineStageActionArgs(
        name="Source",
        category="Source",
        owner="AWS",
        provider=provider,
        version="1",
        output_artifacts=["source"],
        configuration=configuration,
        namespace="SourceVariables",
    )


def _statements(args: ReleasePipelineArgs, runs: Sequence[str]) -> list[Mapping[str, Any]]:
    """Artifacts, the data key, exactly the builds the stages run, the source, and the approval notice."""
    ctx, settings = args.context, args.settings
    statements: list[Mapping[str, Any]] = [
        {
            "Sid": "Artifacts",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
            "Resource": pulumi.Output.concat(args.artifacts_arn, "/*"),
        },
        {
            "Sid": "ArtifactBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketVersioning", "s3:GetBucketLocation"],
            "Resource": args.artifacts_arn,
        },
        key_by_alias(ctx, args.data_key_alias, KMS_READ_WRITE),
        {
            "Sid": "Builds",
            "Effect": "Allow",
            "Action": ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
            "Resource": [ctx.arn("codebuild", f"project/{args.prefix}-{role}") for role in runs],
        },
    ]
    if not settings.builds:
        bucket = ctx.s3_arn(args.upstream_releases_bucket)
        statements += [
            {
                "Sid": "Source",
                "Effect": "Allow",
                # What CodePipeline's S3 source action documents it needs.
                "Action": [
                    "s3:GetObject",
                    "s3:GetObjectTagging",
                    "s3:GetObjectVersion",
                    "s3:GetObjectVersionTagging",
                ],
                "Resource": pulumi.Output.concat(bucket, f"/{settings.promote_from}/*"),
            },
            {
                "Sid": "SourceBucket",
                "Effect": "Allow",
                "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation", "s3:GetBucketVersioning"],
                "Resource": bucket,
            },
            key_by_alias(ctx, args.upstream_data_key_alias, ["kms:Decrypt"], sid="SourceKey"),
        ]
    elif settings.source == "codecommit":
        source_actions = [
            "codecommit:CancelUploadArchive",
            "codecommit:GetBranch",
            "codecommit:GetCommit",
            "codecommit:GetRepository",
            "codecommit:GetUploadArchiveStatus",
            "codecommit:UploadArchive",
        ]
        statements.append(
            {"Sid": "Source", "Effect": "Allow", "Action": source_actions, "Resource": args.repository_arn}
        )
    else:
        statements.append(
            {
                "Sid": "Source",
                "Effect": "Allow",
                "Action": ["codeconnections:UseConnection", "codestar-connections:UseConnection"],
                "Resource": settings.connection_arn,
            }
        )
    if settings.require_approval:
        statements.append(
            {
                "Sid": "ApprovalNotice",
                "Effect": "Allow",
                "Action": "sns:Publish",
                "Resource": args.notification_topic_policy_arn,
            }
        )
        # The topic is encrypted: a publisher needs its key, here only through SNS in this region.
        key = key_by_alias(ctx, args.notification_key_alias, KMS_PUBLISH, sid="ApprovalNoticeKey")
        key["Condition"]["StringEquals"] = {"kms:ViaService": f"sns.{ctx.region}.{ctx.dns_suffix}"}
        statements.append(key)
    return statements
