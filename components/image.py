"""The ECR repository and the image the service runs, always pinned by digest."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from .common import (
    AwsContext,
    assume_role_policy,
    child_opts,
    key_by_alias,
    other_account_roles,
    role_with_policy,
    stateful_opts,
)
from .facts import PLATFORMS

# Public images the tasks run (the X-Ray daemon) come through a pull-through cache in the stack's own
# registry: tasks reach ECR through its VPC endpoints in every network mode, and ECR Public through
# no endpoint at all. The 3.x tag follows the daemon's supported major version.
PUBLIC_REGISTRY = "public.ecr.aws"
XRAY_DAEMON = "xray/aws-xray-daemon:3.x"
CACHED_IMAGES_KEPT = 5
# The release job tags each released image `release-<environment>-<commit>` (buildspecs/scripts/publish-release.sh).
RELEASE_TAG_PREFIX = "release-"


def context_hash(path: str) -> str:
    """A short content hash of a build context: the image tag, so a tag never names two images."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", ".pytest_cache", "venv"))
        for file_name in sorted(files):
            if file_name.endswith(".pyc"):
                continue
            full = os.path.join(root, file_name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class ContainerImageArgs:
    """Inputs of a ContainerImage.

    ``image``: an ECR digest reference to deploy; empty builds ``build_context`` with Docker. Default empty.
    ``kms_key_alias``: the alias of ``kms_key_arn``, which scopes the cache role's key permissions.
    ``keep_tagged_images``: the lifecycle policy keeps this many images; default 30.
    ``untagged_expiry_days``: untagged images (failed or superseded pushes) expire after; default 1.
    ``protect``: protect and retain the repository, and refuse to delete it while it holds images.
    ``owns_repository``: False for a stack that promotes another environment's releases: it deploys
    ``image`` (required then) from that environment's ``repository_name`` and creates no repository;
    its pull-through cache is then named after ``cache_name``. Default True.
    """

    repository_name: str
    kms_key_arn: pulumi.Input[str]
    architecture: str
    context: AwsContext
    kms_key_alias: str
    image: str = ""
    build_context: str = "app"
    keep_tagged_images: int = 30
    untagged_expiry_days: int = 1
    protect: bool = False
    owns_repository: bool = True
    cache_name: str = ""
    # Other environments deploy this repository's released images (they promote from this one): the
    # repository is then protected and retained whatever ``protect`` says, and images the release job
    # tagged `release-…` outlive the lifecycle's count (up to 1000 of them).
    promoted_to: Sequence[str] = ()
    # Roles of other accounts that run this repository's released images (the task execution roles of
    # stacks promoting from this one across accounts), as (account ID, role name).
    pull_roles: Sequence[tuple[str, str]] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.owns_repository and not self.image:
            raise ValueError("ContainerImageArgs.image is required when the repository is another stack's")
        if self.architecture not in PLATFORMS:
            raise ValueError(f"ContainerImageArgs.architecture must be one of {', '.join(PLATFORMS)}")
        if not 1 <= self.keep_tagged_images <= 1000:
            raise ValueError("ContainerImageArgs.keep_tagged_images must be 1..1000")
        if not 1 <= self.untagged_expiry_days <= 365:
            raise ValueError("ContainerImageArgs.untagged_expiry_days must be 1..365")
        if len(self.public_cache_prefix) > 30:
            raise ValueError(
                "ContainerImageArgs.repository_name must be at most 26 characters (the cache prefix "
                f"<name>-pub is limited to 30); got {self.repository_name!r}"
            )

    @property
    def public_cache_prefix(self) -> str:
        return f"{self.cache_name or self.repository_name}-pub"


class ContainerImage(pulumi.ComponentResource):
    """An ECR repository (scan on push, immutable tags, KMS, lifecycle) and the image to deploy."""

    image_ref: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:image:ContainerImage", name, None, opts)
        self._create_public_cache(name, args)
        if not args.owns_repository:
            # A promoted release: the upstream environment's image, by digest, from its repository.
            self.repository = None
            self.repository_url = pulumi.Output.concat(self.registry, "/", args.repository_name)
            self.image_ref = self.task_image_ref = pulumi.Output.from_input(args.image)
            self.image = None
            self.image_ready = []
            self.register_outputs({"image_ref": self.image_ref, "xray_image": self.xray_image})
            return
        keep = args.protect or bool(args.promoted_to)
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            name=args.repository_name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=args.kms_key_arn)
            ],
            # Outside prod a stack can be torn down with its images; prod, and a repository other
            # environments run releases from, keep them.
            force_delete=not keep,
            tags=dict(args.tags),
            opts=stateful_opts(self, keep),
        )
        self.lifecycle_policy = aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        *(
                            [
                                {
                                    # An image a matching rule keeps is never expired by a later rule:
                                    # released images outlive the count below.
                                    "rulePriority": 1,
                                    "description": "Keep the last 1000 released images (tagged release-)",
                                    "selection": {
                                        "tagStatus": "tagged",
                                        "tagPrefixList": [RELEASE_TAG_PREFIX],
                                        "countType": "imageCountMoreThan",
                                        "countNumber": 1000,
                                    },
                                    "action": {"type": "expire"},
                                }
                            ]
                            if args.promoted_to
                            else []
                        ),
                        {
                            "rulePriority": 2 if args.promoted_to else 1,
                            "description": f"Expire untagged images after {args.untagged_expiry_days} day(s)",
                            "selection": {
                                "tagStatus": "untagged",
                                "countType": "sinceImagePushed",
                                "countUnit": "days",
                                "countNumber": args.untagged_expiry_days,
                            },
                            "action": {"type": "expire"},
                        },
                        {
                            # An "any" rule must have the highest priority number (AWS evaluates it last).
                            "rulePriority": 3 if args.promoted_to else 2,
                            "description": f"Keep the last {args.keep_tagged_images} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": args.keep_tagged_images,
                            },
                            "action": {"type": "expire"},
                        },
                    ]
                },
                separators=(",", ":"),
            ),
            opts=child_opts(self),
        )
        if args.pull_roles:
            self._grant_pulls(name, args)
        self.repository_url = self.repository.repository_url
        if args.image:
            self.image_ref = pulumi.Output.from_input(args.image)
            self.task_image_ref = self.image_ref
            self.image = None
            self.image_ready: list[pulumi.Resource] = []
        else:
            self.image = self._build(name, args)
            # repo_digest is "<repository>@sha256:<digest>": what the stack exports and the pipeline pins.
            self.image_ref = self.image.repo_digest
            # The task definition names the same bytes by their content-addressed tag, known before the
            # build (the repository is IMMUTABLE, so the tag can never point at other bytes): the policy
            # pack can check the container definitions at a first preview. It waits for the push.
            self.task_image_ref = pulumi.Output.concat(
                self.registry, "/", args.repository_name, ":", context_hash(args.build_context)
            )
            self.image_ready = [self.image]
        self.register_outputs(
            {"repository_url": self.repository_url, "image_ref": self.image_ref, "xray_image": self.xray_image}
        )

    def _grant_pulls(self, name: str, args: ContainerImageArgs) -> None:
        """Another account's task execution roles pull released images by digest."""
        aws.ecr.RepositoryPolicy(
            f"{name}-policy",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "PromotedPull",
                            "Effect": "Allow",
                            **other_account_roles(args.context.partition, args.pull_roles),
                            "Action": [
                                "ecr:BatchCheckLayerAvailability",
                                "ecr:BatchGetImage",
                                "ecr:GetDownloadUrlForLayer",
                            ],
                        }
                    ],
                },
                separators=(",", ":"),
            ),
            opts=child_opts(self),
        )

    def _create_public_cache(self, name: str, args: ContainerImageArgs) -> None:
        """The ECR Public pull-through cache, and the template its repositories are created from."""
        ctx = args.context
        prefix = args.public_cache_prefix
        self.public_cache_prefix = prefix
        self.public_cache_repositories_arn = ctx.arn("ecr", f"repository/{prefix}/*")
        self.registry = pulumi.Output.concat(ctx.account_id, ".dkr.ecr.", ctx.region, ".", ctx.dns_suffix)
        self.xray_image = pulumi.Output.concat(self.registry, "/", prefix, "/", XRAY_DAEMON)
        # ECR Public needs no credentials. The first pull of an image creates its repository here.
        self.public_cache = aws.ecr.PullThroughCacheRule(
            f"{name}-public-cache",
            ecr_repository_prefix=prefix,
            upstream_registry_url=PUBLIC_REGISTRY,
            opts=child_opts(self),
        )
        # Encrypting the repositories the cache creates with our key needs a role ECR assumes.
        role = role_with_policy(
            self,
            f"{name}-public-cache",
            role_name=f"{prefix}-cache",
            description=f"Lets ECR create the repositories of the {prefix} pull-through cache, encrypted",
            trust=assume_role_policy("ecr.amazonaws.com", {"StringEquals": {"aws:SourceAccount": ctx.account_id}}),
            statements=[
                {
                    "Sid": "CreateCachedRepositories",
                    "Effect": "Allow",
                    "Action": ["ecr:CreateRepository", "ecr:ReplicateImage", "ecr:TagResource"],
                    "Resource": self.public_cache_repositories_arn,
                },
                key_by_alias(ctx, args.kms_key_alias, ["kms:CreateGrant", "kms:DescribeKey", "kms:RetireGrant"]),
            ],
            tags=args.tags,
        )
        self.public_cache_template = aws.ecr.RepositoryCreationTemplate(
            f"{name}-public-cache-template",
            prefix=prefix,
            description="Repositories of the ECR Public pull-through cache",
            applied_fors=["PULL_THROUGH_CACHE"],
            encryption_configurations=[
                aws.ecr.RepositoryCreationTemplateEncryptionConfigurationArgs(
                    encryption_type="KMS", kms_key=args.kms_key_arn
                )
            ],
            # A cached tag follows its upstream tag (3.x moves with each daemon release), so the cache
            # repositories are MUTABLE; the stack's own repository stays IMMUTABLE (README, Security decisions).
            image_tag_mutability="MUTABLE",
            lifecycle_policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"Keep the last {CACHED_IMAGES_KEPT} cached images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": CACHED_IMAGES_KEPT,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                },
                separators=(",", ":"),
            ),
            custom_role_arn=role.arn,
            opts=child_opts(self),
        )
        # What a first pull of xray_image needs: the rule, and the template (a cached repository gets it
        # only when it is created). The image is named from known parts, so it stays known at preview.
        self.xray_image_ready = [self.public_cache, self.public_cache_template]

    def _build(self, name: str, args: ContainerImageArgs) -> docker.Image:
        tag = context_hash(args.build_context)
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        image_name = pulumi.Output.concat(self.repository.repository_url, ":", tag)
        return docker.Image(
            f"{name}-image",
            image_name=image_name,
            build=docker.DockerBuildArgs(
                context=args.build_context,
                dockerfile=os.path.join(args.build_context, "Dockerfile"),
                platform=PLATFORMS[args.architecture],
                # Each pushed image carries its layer cache, so the registry is the build cache.
                args={"BUILDKIT_INLINE_CACHE": "1"},
                builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
                cache_from=docker.CacheFromArgs(images=[image_name]),
            ),
            registry=docker.RegistryArgs(
                server=self.repository.repository_url,
                username=token.user_name,
                password=pulumi.Output.secret(token.password),
            ),
            opts=child_opts(self, depends_on=[self.lifecycle_policy]),
        )
