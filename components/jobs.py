"""The pipeline's jobs as data: what each CodeBuild project runs, with which variables, secrets and
extra permissions. No resources here; components/buildprojects.py creates the projects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

from .common import key_by_alias
from .facts import PLATFORMS

if TYPE_CHECKING:
    from .pipeline import BuildPipelineArgs

# Versions the jobs install, pinned so a build is repeatable; bump them deliberately.
PULUMI_VERSION = "3.272.0"
TRIVY_VERSION = "0.58.1"


@dataclass(frozen=True)
class Project:
    """One CodeBuild project: its buildspec, environment and the extra permissions it needs.
    ``in_pipeline``: run by the pipeline (its source and artifacts), else it clones the repository."""

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
class JobContext:
    """What the jobs refer to: the token secrets by key, the repositories they read and push, and
    where releases are recorded (this environment's, and for a promoting stack its upstream's)."""

    secret_names: Mapping[str, str]
    repository_arn: pulumi.Input[str] | None
    ecr_repository_uri: pulumi.Input[str]
    releases_bucket: pulumi.Input[str]
    release_parameter: str
    upstream_releases_bucket: pulumi.Input[str] | None = None
    upstream_release_parameter: str = ""
    # Across accounts: the upstream's role that reads its record history, and (in a building stack)
    # the releases buckets of the downstream environments its release job copies bundles into.
    upstream_reader_role_arn: pulumi.Input[str] | None = None
    downstream_buckets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)


def secret_read(args: BuildPipelineArgs, jobs: JobContext, key: str, sid: str) -> dict[str, Any]:
    # Secrets Manager appends six random characters to a secret's ARN.
    arn = args.context.arn("secretsmanager", f"secret:{jobs.secret_names[key]}-??????")
    return {"Sid": sid, "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": arn}


def pipeline_jobs(args: BuildPipelineArgs, jobs: JobContext) -> list[Project]:
    """Unit tests, SonarQube and Trivy in parallel, then the image, then the deploy; the drift check
    beside the pipeline, and with CodeCommit the pull-request preview."""
    ctx, settings = args.context, args.pipeline
    ecr_arn = ctx.arn("ecr", f"repository/{args.ecr_repository_name}")
    pulumi_env, pulumi_secrets, pulumi_statements = _pulumi_job(args, jobs)
    if not settings.builds:
        return _promoting_jobs(args, jobs, pulumi_env, pulumi_secrets, pulumi_statements)
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
                "SONAR_HOST_URL": settings.sonar_host_url,
                "SONAR_PROJECT_KEY": settings.sonar_project_key,
                **({"SONAR_ORGANIZATION": settings.sonar_organization} if settings.sonar_organization else {}),
            },
            secrets={"SONAR_TOKEN": jobs.secret_names["sonar-token"]},
            statements=[secret_read(args, jobs, "sonar-token", "SonarToken")],
        ),
        Project(
            "trivy",
            "Trivy scans of the source tree and the IaC; findings at the severity fail the build",
            "buildspecs/trivy.yml",
            environment={"TRIVY_VERSION": TRIVY_VERSION, "TRIVY_SEVERITY": settings.trivy_severity},
        ),
        Project(
            "image",
            "Builds the image, scans it with Trivy, and pushes it only when clean",
            "buildspecs/image.yml",
            environment={
                "TRIVY_VERSION": TRIVY_VERSION,
                "TRIVY_SEVERITY": settings.trivy_severity,
                "REPOSITORY_URI": jobs.ecr_repository_uri,
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
        Project(
            "drift",
            "Compares the live stack with git (pulumi preview --refresh --expect-no-changes)",
            "buildspecs/drift.yml",
            environment=pulumi_env,
            secrets=pulumi_secrets,
            statements=pulumi_statements + _source_read_statements(args, jobs),
            in_pipeline=False,
        ),
        _release_job(args, jobs),
    ]
    if settings.source == "codecommit":
        specs.append(_preview_job(args, jobs))
    return specs


def _promoting_jobs(args, jobs, pulumi_env, pulumi_secrets, pulumi_statements) -> list[Project]:
    """A promoting stack never builds: it deploys a release of its upstream environment (checking
    that the upstream released that digest), checks drift, and records its own releases."""
    ctx, upstream = args.context, args.pipeline.promote_from
    history = (
        # Another account's record history, through the role it keeps for this job.
        {
            "Sid": "UpstreamReleases",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": jobs.upstream_reader_role_arn,
        }
        if jobs.upstream_reader_role_arn is not None
        else {
            "Sid": "UpstreamReleases",
            "Effect": "Allow",
            "Action": "ssm:GetParameterHistory",
            "Resource": _parameter_arn(ctx, jobs.upstream_release_parameter),
        }
    )
    upstream_reads = [history, *_upstream_bundle_reads(args, jobs)]
    promote = {
        "PROMOTE_FROM": upstream,
        "UPSTREAM_RELEASE_PARAMETER": jobs.upstream_release_parameter,
        "UPSTREAM_RELEASES_BUCKET": jobs.upstream_releases_bucket,
        **({"UPSTREAM_ROLE_ARN": jobs.upstream_reader_role_arn} if jobs.upstream_reader_role_arn is not None else {}),
    }
    chosen = []
    if args.pipeline.require_approval:
        # Before the approval: which release this execution deploys, verified as the deploy verifies it,
        # so the approver sees its commit, digest and bundle (and the deploy deploys exactly that one).
        chosen.append(
            Project(
                "choose",
                f"Finds and verifies the {upstream} release an execution would deploy, for its approval",
                "buildspecs/choose-release.yml",
                environment=promote,
                statements=upstream_reads,
                timeout_minutes=10,
            )
        )
    return [
        *chosen,
        Project(
            "deploy",
            f"Deploys a release of {upstream} (refusing a digest {upstream} never released), after a preview",
            "buildspecs/deploy.yml",
            environment={**pulumi_env, **promote},
            secrets=pulumi_secrets,
            statements=pulumi_statements + upstream_reads,
            timeout_minutes=args.deploy_timeout_minutes,
        ),
        Project(
            "drift",
            "Compares the live stack with the release it runs (pulumi preview --refresh --expect-no-changes)",
            "buildspecs/drift.yml",
            environment=pulumi_env,
            secrets=pulumi_secrets,
            statements=pulumi_statements + _release_bucket_read(args, jobs),
            in_pipeline=False,
        ),
        _release_job(args, jobs),
    ]


def _upstream_bundle_reads(args, jobs: JobContext) -> list[dict]:
    """The upstream's release bundles (S3, encrypted with the upstream's data key), read only."""
    ctx, upstream = args.context, args.pipeline.promote_from
    return [
        {
            "Sid": "UpstreamBundles",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": ctx.s3_arn(jobs.upstream_releases_bucket, f"{upstream}/*"),
        },
        key_by_alias(ctx, args.upstream_data_key_alias, ["kms:Decrypt"], sid="UpstreamKey"),
    ]


def _downstream_copies(args, jobs: JobContext) -> list[dict]:
    """Bundles copied into the releases buckets of downstream stacks in other accounts, encrypted
    there with their keys (named by those buckets' policies and key policies, which admit this job)."""
    if not jobs.downstream_buckets:
        return []
    ctx = args.context
    accounts = sorted({account for account, _ in args.downstreams.values()})
    return [
        {
            "Sid": "DownstreamCopies",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": [
                ctx.s3_arn(bucket, f"{args.environment}/*") for _, bucket in sorted(jobs.downstream_buckets.items())
            ],
            # Only into buckets those accounts own: a bucket of the same name elsewhere is refused.
            "Condition": {"StringEquals": {"s3:ResourceAccount": accounts}},
        },
        {
            "Sid": "DownstreamKeys",
            "Effect": "Allow",
            # A put encrypts with the bucket's key (a multipart put also decrypts): another account's key
            # IDs are not known here, so any key of those accounts, only through S3. Their key policies
            # admit this role for exactly their data key.
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": [f"arn:{ctx.partition}:kms:{ctx.region}:{account}:key/*" for account in accounts],
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{ctx.region}.{ctx.dns_suffix}"}},
        },
    ]


def _parameter_arn(ctx, name: str) -> pulumi.Output[str]:
    # A parameter named /a/b has the ARN …:parameter/a/b (the name's leading slash is not doubled).
    return ctx.arn("ssm", f"parameter{name}")


def _release_bucket_read(args, jobs: JobContext) -> list[dict]:
    """The drift check of a promoting stack runs the source bundle of the release the stack runs."""
    bucket = args.context.s3_arn(jobs.releases_bucket)
    return [
        {
            "Sid": "CurrentRelease",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": pulumi.Output.concat(bucket, f"/{args.environment}/*"),
        },
        # CodeBuild's S3 source reads the bucket's location and ACL (its documented service-role policy).
        {
            "Sid": "CurrentReleaseBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketAcl", "s3:GetBucketLocation"],
            "Resource": bucket,
        },
    ]


def _release_job(args, jobs: JobContext) -> Project:
    """After a deploy: the rollback alarms must be quiet, then the release is recorded (history in the
    releases bucket, the newest in the SSM parameter, then the newest bundle, whose creation starts any
    downstream pipeline) and its lead time sent as a metric."""
    ctx = args.context
    alarms = list(args.rollback_alarm_names)
    upstream: dict[str, Any] = {}
    reads: list[dict] = _downstream_copies(args, jobs)
    if jobs.downstream_buckets:
        # The downstream environments in other accounts get a copy of each bundle (their pipelines'
        # source): `<account>/<bucket>` words, the account being the one that must own the bucket.
        upstream["DOWNSTREAM_BUCKETS"] = pulumi.Output.all(
            *(
                pulumi.Output.concat(args.downstreams[env][0], "/", bucket)
                for env, bucket in sorted(jobs.downstream_buckets.items())
            )
        ).apply(" ".join)
    if not args.pipeline.builds:
        upstream = {
            "PROMOTE_FROM": args.pipeline.promote_from,
            "UPSTREAM_RELEASES_BUCKET": jobs.upstream_releases_bucket,
        }
        reads = _upstream_bundle_reads(args, jobs)
    return Project(
        "release",
        "Records the release once the deploy baked with the rollback alarms quiet",
        "buildspecs/release.yml",
        environment={
            "ENVIRONMENT": args.environment,
            "RELEASE_PARAMETER": jobs.release_parameter,
            "RELEASES_BUCKET": jobs.releases_bucket,
            "ROLLBACK_ALARMS": " ".join(alarms),
            "PIPELINE_NAME": args.prefix,
            "METRIC_NAMESPACE": f"cicd/{args.prefix}",
            "BUILDS": "1" if args.pipeline.builds else "0",
            **upstream,
        },
        statements=reads
        + [
            {
                "Sid": "RollbackAlarms",
                "Effect": "Allow",
                "Action": "cloudwatch:DescribeAlarms",
                "Resource": [ctx.arn("cloudwatch", f"alarm:{a}") for a in alarms],
            },
            {
                "Sid": "LeadTime",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                # PutMetricData has no resource-level permissions: AWS requires "*"; the namespace is scoped.
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": f"cicd/{args.prefix}"}},
            },
            {
                "Sid": "Approver",
                "Effect": "Allow",
                "Action": "codepipeline:ListActionExecutions",
                "Resource": ctx.arn("codepipeline", args.prefix),
            },
            *(
                [
                    {
                        "Sid": "TagReleasedImage",
                        "Effect": "Allow",
                        "Action": ["ecr:BatchGetImage", "ecr:DescribeImages", "ecr:PutImage"],
                        "Resource": ctx.arn("ecr", f"repository/{args.ecr_repository_name}"),
                    }
                ]
                if args.pipeline.builds
                else []
            ),
            {
                "Sid": "Record",
                "Effect": "Allow",
                "Action": "ssm:PutParameter",
                "Resource": _parameter_arn(ctx, jobs.release_parameter),
            },
            {
                "Sid": "History",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": ctx.s3_arn(jobs.releases_bucket, f"{args.environment}/*"),
            },
        ],
    )


def _pulumi_job(args: BuildPipelineArgs, jobs: JobContext) -> tuple[dict, dict, list]:
    """Environment, secrets and statements of a job that runs the Pulumi CLI."""
    settings = args.pipeline
    environment = {
        "PULUMI_VERSION": PULUMI_VERSION,
        "PULUMI_BACKEND_URL": settings.backend_url,
        "PULUMI_STACK": args.stack,
        "DEPLOY_ROLE_ARN": settings.deploy_role_arn,
        # The program reads the stack's release record itself (pin-running-image.sh then pins nothing).
        "RELEASE_PARAMETER": jobs.release_parameter,
        # The program refuses to build the image itself: these jobs deploy a digest, or the one
        # the stack runs now (buildspecs/scripts/pin-running-image.sh), never a local build.
        "CICD_REQUIRE_IMAGE": "1",
    }
    secrets = {}
    statements: list[dict] = [
        {"Sid": "AssumeDeployRole", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": settings.deploy_role_arn}
    ]
    if args.pulumi_cloud:
        secrets["PULUMI_ACCESS_TOKEN"] = jobs.secret_names["pulumi-access-token"]
        statements.append(secret_read(args, jobs, "pulumi-access-token", "PulumiToken"))
    return environment, secrets, statements


def _preview_job(args: BuildPipelineArgs, jobs: JobContext) -> Project:
    """The pull-request preview, built from nothing: it runs code nobody has reviewed yet, so it
    gets only the pull request itself and, when a preview role is configured, that read-only role
    and a read-only Pulumi Cloud token. Never the deploy role nor the deploy jobs' token."""
    settings = args.pipeline
    environment = {
        "PULUMI_VERSION": PULUMI_VERSION,
        "PULUMI_BACKEND_URL": settings.backend_url,
        "PULUMI_STACK": args.stack,
        "PREVIEW_ROLE_ARN": settings.preview_role_arn,
        # With a preview role, the preview runs the stack's release (pin-running-image.sh defers to it).
        "RELEASE_PARAMETER": jobs.release_parameter,
        "REPOSITORY_NAME": settings.repository_name,
        # The comment compares the monthly cost with this branch's (buildspecs/scripts/cost-diff.sh).
        "BASE_BRANCH": settings.branch,
    }
    secrets: dict[str, str] = {}
    statements: list[dict] = [
        {
            "Sid": "PullRequests",
            "Effect": "Allow",
            "Action": ["codecommit:GetPullRequest", "codecommit:GitPull", "codecommit:PostCommentForPullRequest"],
            "Resource": jobs.repository_arn,
        }
    ]
    if settings.preview_role_arn:
        statements.append(
            {
                "Sid": "AssumePreviewRole",
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": settings.preview_role_arn,
            }
        )
        if args.pulumi_cloud:
            secrets["PULUMI_ACCESS_TOKEN"] = jobs.secret_names["pulumi-preview-token"]
            statements.append(secret_read(args, jobs, "pulumi-preview-token", "PulumiPreviewToken"))
    return Project(
        "preview",
        "Previews a pull request with the policy pack and comments the result on it",
        "buildspecs/preview.yml",
        environment=environment,
        secrets=secrets,
        statements=statements,
        in_pipeline=False,
    )


def _source_read_statements(args: BuildPipelineArgs, jobs: JobContext) -> list[dict]:
    """What a project outside the pipeline needs to clone the repository itself."""
    if args.pipeline.source == "codecommit":
        return [{"Sid": "Clone", "Effect": "Allow", "Action": "codecommit:GitPull", "Resource": jobs.repository_arn}]
    return [
        {
            "Sid": "Clone",
            "Effect": "Allow",
            "Action": ["codeconnections:GetConnectionToken", "codeconnections:UseConnection"],
            "Resource": args.pipeline.connection_arn,
        }
    ]
