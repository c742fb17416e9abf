"""cicd: a GitOps delivery platform for one container service. Composition only."""

import pulumi
import pulumi_aws as aws

import config
from components.common import AwsContext
from components.encryption import KmsKey, KmsKeyArgs, RoleGrant
from components.image import ContainerImage, ContainerImageArgs
from components.monitoring import Monitoring, MonitoringArgs
from components.network import Network, NetworkArgs
from components.observability import Observability, ObservabilityArgs
from components.pipeline import BuildPipeline, BuildPipelineArgs
from components.release import release_parameter, released_image
from components.service import FargateService, FargateServiceArgs
from components.source import SourceRepository, SourceRepositoryArgs

settings = config.load()
tags = settings.tag_map
prefix = settings.prefix
svc = settings.service
obs = settings.observability
pipe = settings.pipeline
upstream_account = settings.upstream_account
downstreams = settings.cross_account_downstreams
# An upstream in another account copies its bundles into this stack's bucket, under this stack's key.
upstream_key_alias = (
    "" if pipe.builds else f"alias/{prefix}-data" if upstream_account else f"alias/{settings.upstream_prefix}-data"
)

if settings.account_id not in ("", config.OFFLINE_SECRET):
    # Before anything is registered: credentials of another account would build this stack there.
    config.require_account(settings, aws.get_caller_identity().account_id)
context = AwsContext.of_provider(settings.region)

# What to run: the configured digest, else the newest release recorded for this environment (or, for a
# promoting stack before its first, its upstream's). A building stack with neither builds app/ (never in CI).
released, released_from = (
    ("", "") if svc.image else released_image(settings.project, svc.name, settings.release_environments)
)
image_ref = config.image_to_deploy(settings, "" if svc.image else released)

observability = Observability(
    "observability",
    ObservabilityArgs(
        context=context,
        prefix=prefix,
        alarm_email=obs.alarm_email,
        slack_workspace_id=obs.slack_workspace_id,
        slack_channel_id=obs.slack_channel_id,
        chatbot_region=obs.chatbot_region,
        protect=settings.protect,
        tags=tags,
    ),
)

data_key_alias = f"alias/{prefix}-data"
data_key = KmsKey(
    "data-key",
    KmsKeyArgs(
        context=context,
        alias=data_key_alias,
        description=f"Images, secrets and build artifacts of {prefix}",
        # Another stack runs releases encrypted with it (images, bundles): kept while it does.
        protect=settings.protect or bool(settings.promoted_to),
        # An upstream in another account writes its bundles into this stack's releases bucket.
        role_grants=[
            RoleGrant(
                sid="UpstreamReleaseCopies",
                account=upstream_account,
                roles=[f"{settings.upstream_prefix}-release-build"],
                actions=("kms:Decrypt", "kms:GenerateDataKey"),
                via_service=f"s3.{settings.region}.{context.dns_suffix}",
            )
        ]
        if upstream_account
        else [],
        tags=tags,
    ),
)

network = Network(
    "network",
    NetworkArgs(
        context=context,
        prefix=prefix,
        network=settings.network,
        log_retention_days=obs.log_retention_days,
        logs_key_arn=observability.key_arn,
        protect=settings.protect,
        tags=tags,
    ),
)

image = ContainerImage(
    "image",
    ContainerImageArgs(
        # A promoting stack runs its upstream's images, from the upstream's repository.
        repository_name=prefix if pipe.builds else settings.upstream_prefix,
        owns_repository=pipe.builds,
        cache_name=prefix,
        kms_key_arn=data_key.arn,
        architecture=svc.architecture,
        context=context,
        kms_key_alias=data_key_alias,
        image=image_ref,
        promoted_to=settings.promoted_to,
        # Stacks in other accounts run the released images: their task execution roles pull them.
        pull_roles=[(account, f"{down_prefix}-execution") for account, down_prefix in downstreams.values()],
        protect=settings.protect,
        tags=tags,
    ),
)

service = FargateService(
    "service",
    FargateServiceArgs(
        context=context,
        prefix=prefix,
        service=svc,
        deployment=settings.deployment,
        observability=obs,
        vpc_id=network.vpc_id,
        vpc_cidr=settings.network.cidr,
        public_subnet_ids=network.public_subnet_ids,
        private_subnet_ids=network.private_subnet_ids,
        image_ref=image.task_image_ref,
        repository_name=prefix if pipe.builds else settings.upstream_prefix,
        repository_account=upstream_account,
        xray_image=image.xray_image,
        image_cache_prefix=image.public_cache_prefix,
        images_ready=[*image.xray_image_ready, *image.image_ready],
        data_key_arn=data_key.arn,
        data_key_alias=data_key_alias,
        logs_key_arn=observability.key_arn,
        certificate_arn=settings.certificate_arn,
        protect=settings.protect,
        waf=settings.waf,
        alarm_topic_arn=observability.topic_arn,
        tags=tags,
    ),
    opts=pulumi.ResourceOptions(depends_on=[network]),
)

# One source repository, owned by the stack that builds; a promoting stack deploys the source each
# release carries.
source = None
if pipe.builds:
    source = SourceRepository(
        "source",
        SourceRepositoryArgs(
            context=context,
            prefix=prefix,
            pipeline=pipe,
            kms_key_arn=data_key.arn,
            notification_topic_arn=observability.topic_arn,
            protect=settings.protect,
            tags=tags,
        ),
    )

pipeline = BuildPipeline(
    "pipeline",
    BuildPipelineArgs(
        context=context,
        prefix=prefix,
        stack=settings.stack,
        project=settings.project,
        environment=settings.environment,
        service_name=svc.name,
        pipeline=pipe,
        clone_url=source.clone_url if source else None,
        rollback_alarm_names=service.deployment_alarm_names,
        upstream_prefix=settings.upstream_prefix,
        upstream_data_key_alias=upstream_key_alias,
        promoted_to=settings.promoted_to,
        upstream_account=upstream_account,
        downstreams=downstreams,
        ecr_repository_name=prefix,
        architecture=svc.architecture,
        data_key_arn=data_key.arn,
        data_key_alias=data_key_alias,
        logs_key_arn=observability.key_arn,
        log_retention_days=obs.log_retention_days,
        notification_topic_arn=observability.topic_arn,
        notification_topic_policy_arn=observability.topic_arn_for_policies,
        notification_key_alias=observability.key_alias,
        xray_image=image.xray_image,
        image_cache_prefix=image.public_cache_prefix,
        access_log_bucket=service.access_log_bucket,
        deploy_timeout_minutes=service.deploy_job_minutes,
        protect=settings.protect,
        tags=tags,
    ),
    opts=pulumi.ResourceOptions(depends_on=[r for r in (source, image) if r is not None]),
)

monitoring = Monitoring(
    "monitoring",
    MonitoringArgs(
        context=context,
        prefix=prefix,
        topic_arn=observability.topic_arn,
        logs_key_arn=observability.key_arn,
        observability=obs,
        load_balancer_arn_suffix=service.load_balancer.arn_suffix,
        target_group_arn_suffixes={role: tg.arn_suffix for role, tg in service.target_groups.items()},
        cluster_name=service.cluster_name,
        service_name=service.service_name,
        pipeline_name=pipeline.pipeline_name,
        pipeline_arn=pipeline.pipeline.arn,
        rollback_alarm_names=service.deployment_alarm_names,
        protect=settings.protect,
        tags=tags,
    ),
)

pulumi.export("url", service.url)
pulumi.export("repositoryUrl", image.repository_url)
pulumi.export("imageRef", image.image_ref)
pulumi.export("clusterName", service.cluster_name)
pulumi.export("serviceName", service.service_name)
pulumi.export("alertTopicArn", observability.topic_arn)
pulumi.export("pipelineName", pipeline.pipeline_name)
pulumi.export("dashboardName", monitoring.dashboard_name)
if source is not None:
    pulumi.export("repositoryCloneUrl", source.clone_url)
pulumi.export(
    "releaseRole",
    ("builds" if pipe.builds else f"promotes from {pipe.promote_from}")
    + (f" (in account {upstream_account})" if upstream_account else "")
    + "".join(f"; {env} promotes from it in account {acct}" for env, (acct, _) in sorted(downstreams.items())),
)
pulumi.export("releaseRecord", release_parameter(settings.project, svc.name, settings.environment))
pulumi.export(
    "imageSource",
    "config" if svc.image else f"release record of {released_from}" if released else "local build of app/",
)
pulumi.export("deployWaitSeconds", service.deploy_wait)
