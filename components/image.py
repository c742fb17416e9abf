"""The ECR repository and the image the service runs, always pinned by digest."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Mapping

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from .common import child_opts, stateful_opts

PLATFORMS = {"ARM64": "linux/arm64", "X86_64": "linux/amd64"}


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

    ``image``: an ECR digest reference to deploy; empty builds ``context`` with Docker. Default empty.
    ``keep_tagged_images``: the lifecycle policy keeps this many images; default 30.
    ``untagged_expiry_days``: untagged images (failed or superseded pushes) expire after; default 1.
    ``protect``: protect and retain the repository, and refuse to delete it while it holds images.
    """

    repository_name: str
    kms_key_arn: pulumi.Input[str]
    architecture: str
    image: str = ""
    context: str = "app"
    keep_tagged_images: int = 30
    untagged_expiry_days: int = 1
    protect: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in PLATFORMS:
            raise ValueError(f"ContainerImageArgs.architecture must be one of {', '.join(PLATFORMS)}")
        if not 1 <= self.keep_tagged_images <= 1000:
            raise ValueError("ContainerImageArgs.keep_tagged_images must be 1..1000")
        if not 1 <= self.untagged_expiry_days <= 365:
            raise ValueError("ContainerImageArgs.untagged_expiry_days must be 1..365")


class ContainerImage(pulumi.ComponentResource):
    """An ECR repository (scan on push, immutable tags, KMS, lifecycle) and the image to deploy."""

    image_ref: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cicd:image:ContainerImage", name, None, opts)
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            name=args.repository_name,
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(
                encryption_type="KMS", kms_key=args.kms_key_arn)],
            # Outside prod a stack can be torn down with its images; prod keeps them.
            force_delete=not args.protect,
            tags=dict(args.tags),
            opts=stateful_opts(self, args.protect),
        )
        self.lifecycle_policy = aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=json.dumps({"rules": [
                {
                    "rulePriority": 1,
                    "description": f"Expire untagged images after {args.untagged_expiry_days} day(s)",
                    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                  "countUnit": "days", "countNumber": args.untagged_expiry_days},
                    "action": {"type": "expire"},
                },
                {
                    # An "any" rule must have the highest priority number (AWS evaluates it last).
                    "rulePriority": 2,
                    "description": f"Keep the last {args.keep_tagged_images} images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                  "countNumber": args.keep_tagged_images},
                    "action": {"type": "expire"},
                },
            ]}, separators=(",", ":")),
            opts=child_opts(self),
        )
        self.repository_url = self.repository.repository_url
        if args.image:
            self.image_ref = pulumi.Output.from_input(args.image)
            self.image = None
        else:
            self.image = self._build(name, args)
            # repo_digest is "<repository>@sha256:<digest>": the task definition pins the bytes.
            self.image_ref = self.image.repo_digest
        self.register_outputs({"repository_url": self.repository_url, "image_ref": self.image_ref})

    def _build(self, name: str, args: ContainerImageArgs) -> docker.Image:
        tag = context_hash(args.context)
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        image_name = pulumi.Output.concat(self.repository.repository_url, ":", tag)
        return docker.Image(
            f"{name}-image",
            image_name=image_name,
            build=docker.DockerBuildArgs(
                context=args.context,
                dockerfile=os.path.join(args.context, "Dockerfile"),
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
