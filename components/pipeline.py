"""The build pipeline: a git push becomes a tested, scanned, approved release.

CodePipeline V2: Source -> Test & Scan (unit tests | SonarQube quality gate | Trivy fs/config, in
parallel) -> Image (build, Trivy image scan, push <git sha>) -> [manual approval] -> Deploy
(`pulumi preview --policy-pack policy`, then `pulumi up` with the pushed digest). Each CodeBuild
project has its own least-privilege role; the Pulumi jobs assume the configured deploy role.
Pull requests get a preview job that comments on the pull request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .bucket import private_bucket
from .common import AwsContext, assume_role_policy, child_opts, key_by_alias, log_group, role_with_policy, stateful_opts
from .facts import PLATFORMS

# Versions the jobs install, pinned so a build is repeatable; bump them deliberately.
PULUMI_VERSION = "3.272.0"
TRIVY_VERSION = "0.58.1"
BUILD_IMAGES = {
    "ARM64": ("ARM_CONTAINER", "aws/codebuild/amazonlinux-aarch64-standard:3.0"),
    "X86_64": ("LINUX_CONTAINER", "aws/codebuild/amazonlinux-x86_64-standard:5.0"),
}
SCAN_ACTIONS = ("unit-tests", "sonarqube", "trivy")
DRIFT_SCHEDULE = "cron(0 6 * * ? *)"  # daily, before the working day starts (UTC)
ARTIFACT_EXPIRY_DAYS = 30
AUTO_DISCOVER = "CODEBUILD_CONFIG_AUTO_DISCOVER"


@dataclass(frozen=True)
class Project:
    """One CodeBuild project: its buildspec, environment and the extra permissions it needs."""

    role: str
    description: str
    buildspec: str
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    statements: Sequence[Mapping[str, Any]] = ()
    privileged: bool = False
    in_pipeline: bool = True
    timeout_minutes: int = 30


@dataclass(frozen=True)
class BuildPipelineArgs:
    """Inputs of a BuildPipeline.

    ``source``: codecommit | github, with ``repository_name`` (CodeCommit) or ``github_repository``
    and ``connection_arn``. ``branch``: the branch that releases. ``stack``: the Pulumi stack the
    deploy job updates. ``require_approval``: a manual approval before deploy; default False.
    ``deploy_role_arn``: the role the deploy and drift jobs assume. ``preview_role_arn``: a read-only
    role for pull-request previews; empty runs the offline plan instead (PR code never gets cloud
    credentials by default). ``data_key_alias`` scopes KMS permissions by alias, known at preview.
    ``notification_topic_arn`` is the topic itself (so the engine creates it first);
    ``notification_topic_policy_arn`` the same ARN from known parts, for IAM documents;
    ``notification_key_alias`` the alias of the key that encrypts the topic.
    ``deploy_timeout_minutes``: the deploy job's build timeout (5..2160); default 60.
    ``access_log_bucket``: where the artifact bucket's S3 access logs go; default none.
    ``xray_image``: the image job pulls it once through the stack's cache (``image_cache_prefix``), so
    the cache holds it before any task in an isolated subnet needs it.
    """

    context: AwsContext
    prefix: str
    stack: str
    source: str
    branch: str
    repository_name: str
    ecr_repository_name: str
    architecture: str
    data_key_arn: pulumi.Input[str]
    data_key_alias: str
    logs_key_arn: pulumi.Input[str]
    log_retention_days: int
    backend_url: str
    deploy_role_arn: str
    notification_topic_arn: pulumi.Input[str]
    notification_topic_policy_arn: pulumi.Input[str]
    notification_key_alias: str
    xray_image: pulumi.Input[str]
    image_cache_prefix: str
    sonar_host_url: str
    sonar_project_key: str
    trivy_severity: str
    github_repository: str = ""
    connection_arn: str = ""
    clone_url: pulumi.Input[str] | None = None
    require_approval: bool = False
    preview_role_arn: str = ""
    sonar_organization: str = ""
    deploy_timeout_minutes: int = 60
    access_log_bucket: pulumi.Input[str] | None = None
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in BUILD_IMAGES:
            raise ValueError(f"BuildPipelineArgs.architecture must be one of {', '.join(BUILD_IMAGES)}")
        if self.source not in ("codecommit", "github"):
            raise ValueError("BuildPipelineArgs.source must be codecommit or github")
        if self.source == "codecommit" and self.clone_url is None:
            raise ValueError("BuildPipelineArgs.clone_url is required with codecommit (the PR preview clones it)")
        if not self.backend_url or not self.deploy_role_arn:
            raise ValueError("BuildPipelineArgs.backend_url and deploy_role_arn are required")
        if not 5 <= self.deploy_timeout_minutes <= 2160:
            raise ValueError(
                "BuildPipelineArgs.deploy_timeout_minutes must be 5..2160 (CodeBuild's range); "
                f"got {self.deploy_timeout_minutes}"
            )

    @property
    def pulumi_cloud(self) -> bool:
        return self.backend_url.startswith("https://")


class BuildPipeline(pulumi.ComponentResource):
    """Artifact bucket, CodeBuild projects, the V2 pipeline, its trigger and the PR preview wiring."""

    def __init__(self, name: str, args: BuildPipelineArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:pipeline:BuildPipeline", name, None, opts)
        self._name = name
        self._args = args
        ctx = args.context
        self.pipeline_name = args.prefix
        self.pipeline_arn = ctx.arn("codepipeline", self.pipeline_name)
        self.repository_arn = ctx.arn("codecommit", args.repository_name) if args.source == "codecommit" else None
        self.ecr_repository_uri = pulumi.Output.concat(
            ctx.account_id, ".dkr.ecr.", ctx.region, ".", ctx.dns_suffix, "/", args.ecr_repository_name
        )

        self._create_artifacts()
        self._create_secrets()
        self.projects: dict[str, aws.codebuild.Project] = {}
        for project in self._project_specs():
            self.projects[project.role] = self._create_project(project)
        self._create_pipeline()
        if args.source == "codecommit":
            self._create_codecommit_trigger()
            self._create_pr_previews()
        self._create_drift_detection()
        self.register_outputs(
            {
                "pipeline_name": self.pipeline_name,
                "artifact_bucket": self.artifacts.name,
                "projects": {role: p.name for role, p in self.projects.items()},
            }
        )

    # -- storage and secrets -----------------------------------------------------------------------

    def _create_artifacts(self) -> None:
        args = self._args
        self.artifacts = private_bucket(
            self,
            f"{self._name}-artifacts",
            bucket_name=pulumi.Output.concat(args.prefix, "-artifacts-", args.context.account_id),
            partition=args.context.partition,
            expiration_days=ARTIFACT_EXPIRY_DAYS,
            protect=False,  # build artifacts are reproducible from git
            tags=args.tags,
            kms_key_arn=args.data_key_arn,
        )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{self._name}-artifacts-logging",
                bucket=self.artifacts.name,
                target_bucket=args.access_log_bucket,
                target_prefix=pulumi.Output.concat("s3/", self.artifacts.name, "/"),
                opts=child_opts(self),
            )

    def _create_secrets(self) -> None:
        """Tokens the jobs read, created empty: their values are put out of band, never in state."""
        args = self._args
        names = {"sonar-token": "SonarQube token that runs analyses of this project"}
        if args.pulumi_cloud:
            names["pulumi-access-token"] = "Pulumi Cloud access token of the deploy and drift jobs"
            if args.preview_role_arn and args.source == "codecommit":
                # Pull-request code runs in the preview: it gets a token of its own, which the README
                # asks to be one that can only read the stack.
                names["pulumi-preview-token"] = "Pulumi Cloud token with read access only, for pull-request previews"
        self.secret_names = {}
        for key, description in names.items():
            secret_name = f"{args.prefix}/{key}"
            aws.secretsmanager.Secret(
                f"{self._name}-{key}",
                name=secret_name,
                description=description,
                kms_key_id=args.data_key_arn,
                recovery_window_in_days=30 if args.protect else 7,
                tags=dict(args.tags),
                opts=stateful_opts(self, args.protect),
            )
            self.secret_names[key] = secret_name

    def _secret_arn(self, key: str) -> pulumi.Output[str]:
        # Secrets Manager appends six random characters to a secret's ARN.
        return self._args.context.arn("secretsmanager", f"secret:{self.secret_names[key]}-??????")

    # -- projects ----------------------------------------------------------------------------------

    def _pulumi_job(self) -> tuple[dict, dict, list]:
        """Environment, secrets and statements of a job that runs the Pulumi CLI."""
        args = self._args
        environment = {
            "PULUMI_VERSION": PULUMI_VERSION,
            "PULUMI_BACKEND_URL": args.backend_url,
            "PULUMI_STACK": args.stack,
            "DEPLOY_ROLE_ARN": args.deploy_role_arn,
            # The program refuses to build the image itself: these jobs deploy a digest, or the one
            # the stack runs now (buildspecs/scripts/pin-running-image.sh), never a local build.
            "CICD_REQUIRE_IMAGE": "1",
        }
        secrets = {}
        statements: list[dict] = [
            {
                "Sid": "AssumeDeployRole",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": args.deploy_role_arn,
            },
        ]
        if args.pulumi_cloud:
            secrets["PULUMI_ACCESS_TOKEN"] = self.secret_names["pulumi-access-token"]
            statements.append(
                {
                    "Sid": "PulumiToken",
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": self._secret_arn("pulumi-access-token"),
                }
            )
        return environment, secrets, statements

    def _project_specs(self) -> list[Project]:
        args = self._args
        ctx = args.context
        ecr_arn = ctx.arn("ecr", f"repository/{args.ecr_repository_name}")
        pulumi_env, pulumi_secrets, pulumi_statements = self._pulumi_job()
        specs = [
            Project(
                "unit-tests",
                "Runs the unit tests and publishes a JUnit report",
                "buildspecs/unit-tests.yml",
                statements=[
                    {
                        "Sid": "Reports",
                        "Effect": "Allow",
                        "Action": [
                            "codebuild:BatchPutCodeCoverages",
                            "codebuild:BatchPutTestCases",
                            "codebuild:CreateReport",
                            "codebuild:CreateReportGroup",
                            "codebuild:UpdateReport",
                        ],
                        "Resource": ctx.arn("codebuild", f"report-group/{args.prefix}-unit-tests-*"),
                    }
                ],
            ),
            Project(
                "sonarqube",
                "SonarQube analysis; a failed quality gate fails the build",
                "buildspecs/sonarqube.yml",
                environment={
                    "SONAR_HOST_URL": args.sonar_host_url,
                    "SONAR_PROJECT_KEY": args.sonar_project_key,
                    **({"SONAR_ORGANIZATION": args.sonar_organization} if args.sonar_organization else {}),
                },
                secrets={"SONAR_TOKEN": self.secret_names["sonar-token"]},
                statements=[
                    {
                        "Sid": "SonarToken",
                        "Effect": "Allow",
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": self._secret_arn("sonar-token"),
                    }
                ],
            ),
            Project(
                "trivy",
                "Trivy scans of the source tree and the IaC; findings at the severity fail the build",
                "buildspecs/trivy.yml",
                environment={"TRIVY_VERSION": TRIVY_VERSION, "TRIVY_SEVERITY": args.trivy_severity},
            ),
            Project(
                "image",
                "Builds the image, scans it with Trivy, and pushes it only when clean",
                "buildspecs/image.yml",
                environment={
                    "TRIVY_VERSION": TRIVY_VERSION,
                    "TRIVY_SEVERITY": args.trivy_severity,
                    "REPOSITORY_URI": self.ecr_repository_uri,
                    "PLATFORM": PLATFORMS[args.architecture],
                    "XRAY_IMAGE": args.xray_image,
                },
                # Docker builds need a privileged build container; only this project has one.
                privileged=True,
                statements=[
                    # GetAuthorizationToken has no resource-level permissions: AWS requires "*".
                    {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                    {
                        "Sid": "EcrPush",
                        "Effect": "Allow",
                        "Action": [
                            "ecr:BatchCheckLayerAvailability",
                            "ecr:BatchGetImage",
                            "ecr:CompleteLayerUpload",
                            "ecr:DescribeImages",
                            "ecr:GetDownloadUrlForLayer",
                            "ecr:InitiateLayerUpload",
                            "ecr:PutImage",
                            "ecr:UploadLayerPart",
                        ],
                        "Resource": ecr_arn,
                    },
                    # Pulling the X-Ray daemon through the cache imports it (and creates its repository).
                    {
                        "Sid": "EcrPullThroughCache",
                        "Effect": "Allow",
                        "Action": [
                            "ecr:BatchCheckLayerAvailability",
                            "ecr:BatchGetImage",
                            "ecr:BatchImportUpstreamImage",
                            "ecr:CreateRepository",
                            "ecr:GetDownloadUrlForLayer",
                        ],
                        "Resource": ctx.arn("ecr", f"repository/{args.image_cache_prefix}/*"),
                    },
                ],
            ),
            Project(
                "deploy",
                "Previews with the policy pack, then runs pulumi up with the scanned digest",
                "buildspecs/deploy.yml",
                environment=pulumi_env,
                secrets=pulumi_secrets,
                statements=pulumi_statements,
                timeout_minutes=args.deploy_timeout_minutes,
            ),
        ]
        specs.append(
            Project(
                "drift",
                "Compares the live stack with git (pulumi preview --refresh --expect-no-changes)",
                "buildspecs/drift.yml",
                environment=pulumi_env,
                secrets=pulumi_secrets,
                statements=pulumi_statements + self._source_read_statements(),
                in_pipeline=False,
            )
        )
        if args.source == "codecommit":
            specs.append(self._preview_project())
        return specs

    def _preview_project(self) -> Project:
        """The pull-request preview, built from nothing: it runs code nobody has reviewed yet, so it
        gets only the pull request itself and, when a preview role is configured, that read-only role
        and a read-only Pulumi Cloud token. Never the deploy role nor the deploy jobs' token."""
        args = self._args
        environment = {
            "PULUMI_VERSION": PULUMI_VERSION,
            "PULUMI_BACKEND_URL": args.backend_url,
            "PULUMI_STACK": args.stack,
            "PREVIEW_ROLE_ARN": args.preview_role_arn,
            "REPOSITORY_NAME": args.repository_name,
        }
        secrets: dict[str, str] = {}
        statements: list[dict] = [
            {
                "Sid": "PullRequests",
                "Effect": "Allow",
                "Action": ["codecommit:GetPullRequest", "codecommit:GitPull", "codecommit:PostCommentForPullRequest"],
                "Resource": self.repository_arn,
            }
        ]
        if args.preview_role_arn:
            statements.append(
                {
                    "Sid": "AssumePreviewRole",
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Resource": args.preview_role_arn,
                }
            )
            if args.pulumi_cloud:
                secrets["PULUMI_ACCESS_TOKEN"] = self.secret_names["pulumi-preview-token"]
                statements.append(
                    {
                        "Sid": "PulumiPreviewToken",
                        "Effect": "Allow",
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": self._secret_arn("pulumi-preview-token"),
                    }
                )
        return Project(
            "preview",
            "Previews a pull request with the policy pack and comments the result on it",
            "buildspecs/preview.yml",
            environment=environment,
            secrets=secrets,
            statements=statements,
            in_pipeline=False,
        )

    def _source_read_statements(self) -> list[dict]:
        """What a project outside the pipeline needs to clone the repository itself."""
        args = self._args
        if args.source == "codecommit":
            return [
                {"Sid": "Clone", "Effect": "Allow", "Action": "codecommit:GitPull", "Resource": self.repository_arn}
            ]
        return [
            {
                "Sid": "Clone",
                "Effect": "Allow",
                "Action": ["codeconnections:GetConnectionToken", "codeconnections:UseConnection"],
                "Resource": args.connection_arn,
            }
        ]

    def _standalone_source(self, buildspec: str) -> aws.codebuild.ProjectSourceArgs:
        args = self._args
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

    def _create_project(self, project: Project) -> aws.codebuild.Project:
        args = self._args
        ctx = args.context
        project_name = f"{args.prefix}-{project.role}"
        log_group_name = f"/aws/codebuild/{project_name}"
        log_group_arn = ctx.arn("logs", f"log-group:{log_group_name}")
        logs = log_group(
            self,
            f"{self._name}-{project.role}-logs",
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
                "Resource": pulumi.Output.concat(log_group_arn, ":log-stream:*"),
            },
            key_by_alias(ctx, args.data_key_alias, ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]),
        ]
        if project.in_pipeline:
            statements.append(
                {
                    "Sid": "Artifacts",
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                    "Resource": pulumi.Output.concat(self.artifacts.arn, "/*"),
                }
            )
        statements += list(project.statements)
        role = role_with_policy(
            self,
            f"{self._name}-{project.role}",
            role_name=f"{project_name}-build",
            description=f"CodeBuild {project_name}: {project.description}",
            trust=assume_role_policy(
                "codebuild.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ctx.account_id}}
            ),
            statements=statements,
            tags=args.tags,
        )
        compute_type, image = "BUILD_GENERAL1_SMALL", BUILD_IMAGES[args.architecture][1]
        # CodeBuild adds CODEBUILD_CONFIG_AUTO_DISCOVER=true to every new project (report auto-discovery);
        # declaring it keeps the next day's drift check from seeing a change (pulumi/pulumi-aws#3839).
        environment = {AUTO_DISCOVER: "true", **project.environment}
        variables = [
            aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=k, value=v, type="PLAINTEXT")
            for k, v in sorted(environment.items())
        ]
        variables += [
            aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=k, value=v, type="SECRETS_MANAGER")
            for k, v in sorted(project.secrets.items())
        ]
        if project.in_pipeline:
            source = aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec=project.buildspec)
            artifacts = aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE")
        else:
            source = self._standalone_source(project.buildspec)
            artifacts = aws.codebuild.ProjectArtifactsArgs(type="NO_ARTIFACTS")
        modes = ["LOCAL_SOURCE_CACHE", "LOCAL_CUSTOM_CACHE"]
        if project.privileged:
            modes.insert(0, "LOCAL_DOCKER_LAYER_CACHE")
        return aws.codebuild.Project(
            f"{self._name}-{project.role}",
            name=project_name,
            description=project.description,
            service_role=role.arn,
            source=source,
            artifacts=artifacts,
            environment=aws.codebuild.ProjectEnvironmentArgs(
                compute_type=compute_type,
                image=image,
                type=BUILD_IMAGES[args.architecture][0],
                image_pull_credentials_type="CODEBUILD",
                privileged_mode=project.privileged,
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
            build_timeout=project.timeout_minutes,
            queued_timeout=60,
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=[logs]),
        )

    # -- the pipeline ------------------------------------------------------------------------------

    def _build_action(
        self,
        name: str,
        role: str,
        run_order: int = 1,
        *,
        namespace: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> aws.codepipeline.PipelineStageActionArgs:
        configuration = {"ProjectName": self.projects[role].name}
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
            run_order=run_order,
            namespace=namespace,
        )

    def _source_action(self) -> aws.codepipeline.PipelineStageActionArgs:
        args = self._args
        if args.source == "codecommit":
            configuration = {
                "RepositoryName": args.repository_name,
                "BranchName": args.branch,
                # An EventBridge rule starts the pipeline; polling would only add delay.
                "PollForSourceChanges": "false",
                "OutputArtifactFormat": "CODE_ZIP",
            }
            provider = "CodeCommit"
        else:
            configuration = {
                "ConnectionArn": args.connection_arn,
                "FullRepositoryId": args.github_repository,
                "BranchName": args.branch,
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

    def _create_pipeline(self) -> None:
        args = self._args
        ctx = args.context
        sha = {"GIT_SHA": "#{SourceVariables.CommitId}"}
        stages = [
            aws.codepipeline.PipelineStageArgs(name="Source", actions=[self._source_action()]),
            aws.codepipeline.PipelineStageArgs(
                name="TestAndScan",
                actions=[
                    # One run order: the three scans run in parallel and all must pass.
                    self._build_action("UnitTests", "unit-tests", 1, variables=sha),
                    self._build_action("SonarQube", "sonarqube", 1, variables=sha),
                    self._build_action("Trivy", "trivy", 1, variables=sha),
                ],
            ),
            aws.codepipeline.PipelineStageArgs(
                name="Image",
                actions=[self._build_action("BuildScanPush", "image", 1, namespace="ImageVariables", variables=sha)],
            ),
        ]
        if args.require_approval:
            stages.append(
                aws.codepipeline.PipelineStageArgs(
                    name="Approval",
                    actions=[
                        aws.codepipeline.PipelineStageActionArgs(
                            name="ApproveRelease",
                            category="Approval",
                            owner="AWS",
                            provider="Manual",
                            version="1",
                            configuration={
                                "NotificationArn": args.notification_topic_arn,
                                "CustomData": f"Release #{{ImageVariables.IMAGE_URI}} to {args.stack}?",
                            },
                        )
                    ],
                )
            )
        stages.append(
            aws.codepipeline.PipelineStageArgs(
                name="Deploy",
                actions=[
                    self._build_action(
                        "PulumiUp", "deploy", 1, variables={"IMAGE_URI": "#{ImageVariables.IMAGE_URI}", **sha}
                    )
                ],
            )
        )
        self.stage_names = [s.name for s in stages]

        statements: list[Mapping[str, Any]] = [
            {
                "Sid": "Artifacts",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                "Resource": pulumi.Output.concat(self.artifacts.arn, "/*"),
            },
            {
                "Sid": "ArtifactBucket",
                "Effect": "Allow",
                "Action": ["s3:GetBucketVersioning", "s3:GetBucketLocation"],
                "Resource": self.artifacts.arn,
            },
            key_by_alias(ctx, args.data_key_alias, ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]),
            {
                "Sid": "Builds",
                "Effect": "Allow",
                "Action": ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                "Resource": [
                    ctx.arn("codebuild", f"project/{args.prefix}-{role}") for role in (*SCAN_ACTIONS, "image", "deploy")
                ],
            },
        ]
        if args.source == "codecommit":
            statements.append(
                {
                    "Sid": "Source",
                    "Effect": "Allow",
                    "Action": [
                        "codecommit:CancelUploadArchive",
                        "codecommit:GetBranch",
                        "codecommit:GetCommit",
                        "codecommit:GetRepository",
                        "codecommit:GetUploadArchiveStatus",
                        "codecommit:UploadArchive",
                    ],
                    "Resource": self.repository_arn,
                }
            )
        else:
            statements.append(
                {
                    "Sid": "Source",
                    "Effect": "Allow",
                    "Action": ["codeconnections:UseConnection", "codestar-connections:UseConnection"],
                    "Resource": args.connection_arn,
                }
            )
        if args.require_approval:
            statements.append(
                {
                    "Sid": "ApprovalNotice",
                    "Effect": "Allow",
                    "Action": "sns:Publish",
                    "Resource": args.notification_topic_policy_arn,
                }
            )
            # The topic is encrypted: a publisher needs its key, here only through SNS in this region.
            key = key_by_alias(
                ctx, args.notification_key_alias, ["kms:Decrypt", "kms:GenerateDataKey"], sid="ApprovalNoticeKey"
            )
            key["Condition"]["StringEquals"] = {"kms:ViaService": f"sns.{ctx.region}.{ctx.dns_suffix}"}
            statements.append(key)
        role = role_with_policy(
            self,
            f"{self._name}-pipeline",
            role_name=f"{args.prefix}-pipeline",
            description=f"CodePipeline {self.pipeline_name}: moves artifacts and starts the builds",
            trust=assume_role_policy(
                "codepipeline.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ctx.account_id}}
            ),
            statements=statements,
            tags=args.tags,
        )
        triggers = None
        if args.source == "github":
            triggers = [
                aws.codepipeline.PipelineTriggerArgs(
                    provider_type="CodeStarSourceConnection",
                    git_configuration=aws.codepipeline.PipelineTriggerGitConfigurationArgs(
                        source_action_name="Source",
                        pushes=[
                            aws.codepipeline.PipelineTriggerGitConfigurationPushArgs(
                                branches=aws.codepipeline.PipelineTriggerGitConfigurationPushBranchesArgs(
                                    includes=[args.branch]
                                )
                            )
                        ],
                    ),
                )
            ]
        self.pipeline = aws.codepipeline.Pipeline(
            f"{self._name}-pipeline",
            name=self.pipeline_name,
            pipeline_type="V2",
            # Releases go out one at a time and in order: a newer push waits, it never cuts in.
            execution_mode="QUEUED",
            role_arn=role.arn,
            artifact_stores=[
                aws.codepipeline.PipelineArtifactStoreArgs(
                    location=self.artifacts.name,
                    type="S3",
                    encryption_key=aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs(
                        id=args.data_key_arn, type="KMS"
                    ),
                )
            ],
            stages=stages,
            triggers=triggers,
            tags=dict(args.tags),
            opts=child_opts(self, depends_on=list(self.projects.values())),
        )

    # -- event wiring ------------------------------------------------------------------------------

    def _event(
        self,
        key: str,
        description: str,
        *,
        target_arn: pulumi.Input[str],
        pattern: Mapping[str, Any] | None = None,
        schedule: str | None = None,
        start: tuple[str, pulumi.Input[str]] | None = None,
        transformer: aws.cloudwatch.EventTargetInputTransformerArgs | None = None,
    ) -> None:
        """An EventBridge rule `<prefix>-<key>` and its target, retried for up to a day.

        `start` is the (action, resource) a role lets EventBridge call on the target; a topic needs
        none, its own policy admits EventBridge.
        """
        args = self._args
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-{key}",
            name=f"{args.prefix}-{key}",
            description=description,
            event_pattern=pulumi.Output.json_dumps(pattern) if pattern is not None else None,
            schedule_expression=schedule,
            tags=dict(args.tags),
            opts=child_opts(self),
        )
        role = None
        if start is not None:
            action, resource = start
            role = role_with_policy(
                self,
                f"{self._name}-{key}-events",
                role_name=f"{args.prefix}-{key}-events",
                description=f"Lets EventBridge {action.split(':')[1]} for {args.prefix}-{key}",
                trust=assume_role_policy(
                    "events.amazonaws.com", {"StringEquals": {"aws:SourceAccount": args.context.account_id}}
                ),
                statements=[{"Sid": "Start", "Effect": "Allow", "Action": action, "Resource": resource}],
                tags=args.tags,
            )
        aws.cloudwatch.EventTarget(
            f"{self._name}-{key}-target",
            rule=rule.name,
            arn=target_arn,
            role_arn=role.arn if role is not None else None,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=86400, maximum_retry_attempts=20
            ),
            input_transformer=transformer,
            opts=child_opts(self),
        )

    def _create_codecommit_trigger(self) -> None:
        """CodePipeline V2 triggers serve connection sources only; CodeCommit pushes arrive as events."""
        args = self._args
        self._event(
            "on-push",
            f"Starts {self.pipeline_name} on every push to {args.branch}",
            target_arn=self.pipeline.arn,
            pattern={
                "source": ["aws.codecommit"],
                "detail-type": ["CodeCommit Repository State Change"],
                "resources": [self.repository_arn],
                "detail": {
                    "event": ["referenceCreated", "referenceUpdated"],
                    "referenceType": ["branch"],
                    "referenceName": [args.branch],
                },
            },
            start=("codepipeline:StartPipelineExecution", self.pipeline_arn),
        )

    def _create_drift_detection(self) -> None:
        """A daily `pulumi preview --refresh --expect-no-changes`; a failed run notifies the topic."""
        args = self._args
        self._event(
            "drift-schedule",
            f"Checks daily that the live {args.stack} stack still matches git",
            target_arn=self.projects["drift"].arn,
            schedule=DRIFT_SCHEDULE,
            start=("codebuild:StartBuild", args.context.arn("codebuild", f"project/{args.prefix}-drift")),
        )
        self._event(
            "drift-detected",
            f"Tells the team when the live {args.stack} stack has drifted from git",
            target_arn=args.notification_topic_arn,
            pattern={
                "source": ["aws.codebuild"],
                "detail-type": ["CodeBuild Build State Change"],
                "detail": {"project-name": [f"{args.prefix}-drift"], "build-status": ["FAILED"]},
            },
            transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={"build": "$.detail.build-id"},
                # A placeholder inside the quoted string is replaced by the raw value.
                input_template=(
                    f'"Drift: the live {args.stack} stack no longer matches git, or the check failed. '
                    'See the build <build>, then reconcile through the pipeline or pulumi refresh."'
                ),
            ),
        )

    def _create_pr_previews(self) -> None:
        args = self._args
        self._event(
            "on-pull-request",
            f"Previews every pull request into {args.branch} with the policy pack",
            target_arn=self.projects["preview"].arn,
            pattern={
                "source": ["aws.codecommit"],
                "detail-type": ["CodeCommit Pull Request State Change"],
                "resources": [self.repository_arn],
                "detail": {
                    "event": ["pullRequestCreated", "pullRequestSourceBranchUpdated"],
                    "destinationReference": [f"refs/heads/{args.branch}"],
                    "pullRequestStatus": ["Open"],
                },
            },
            start=("codebuild:StartBuild", args.context.arn("codebuild", f"project/{args.prefix}-preview")),
            # StartBuild on the pull request's source commit, told which pull request it is.
            transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={
                    "pr": "$.detail.pullRequestId",
                    "source": "$.detail.sourceCommit",
                    "destination": "$.detail.destinationCommit",
                },
                input_template=(
                    '{"sourceVersion": <source>, "environmentVariablesOverride": ['
                    '{"name": "PR_ID", "value": <pr>, "type": "PLAINTEXT"}, '
                    '{"name": "SOURCE_COMMIT", "value": <source>, "type": "PLAINTEXT"}, '
                    '{"name": "DESTINATION_COMMIT", "value": <destination>, "type": "PLAINTEXT"}]}'
                ),
            ),
        )
