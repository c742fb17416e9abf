"""S3: pulumi-aws 7 configures a bucket through separate resources, so these are stack rules."""

from pulumi_policy import Severity

from ._util import (
    is_public_principal,
    is_unknown,
    of_type,
    parse_json,
    plain,
    resource_policy,
    stack_policy,
    statements,
)

BUCKET = "aws:s3/bucket:Bucket"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
ACL = "aws:s3/bucketAcl:BucketAcl"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
BLOCK_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _buckets(resources):
    for bucket in of_type(resources, BUCKET):
        props = plain(bucket.props)
        yield bucket, props.get("bucket")


def _by_bucket(resources, typ):
    """bucket name -> props of each resource of `typ` attached to it."""
    attached = {}
    for resource in of_type(resources, typ):
        props = plain(resource.props)
        attached.setdefault(props.get("bucket"), []).append(props)
    return attached


def _public_access_block(resources, _args):
    blocks = _by_bucket(resources, PUBLIC_ACCESS_BLOCK)
    for bucket, name in _buckets(resources):
        ok = any(all(b.get(flag) is True for flag in BLOCK_FLAGS) for b in blocks.get(name, []))
        if not (ok or (is_unknown(name) and blocks)):
            yield (
                f"Bucket {name} must have a public access block with all four flags true. Add an "
                "aws.s3.BucketPublicAccessBlock.",
                bucket.urn,
            )


def _attached_check(typ, message, predicate=lambda props: True):
    def check(resources, _args):
        attached = _by_bucket(resources, typ)
        for bucket, name in _buckets(resources):
            ok = any(predicate(p) for p in attached.get(name, []))
            if not (ok or (is_unknown(name) and attached)):
                yield message.format(name=name), bucket.urn

    return check


def _access_logged(resources, _args):
    """Every bucket logs access to another, except a log destination: the target of another bucket's
    logging or of a load balancer's access logs (logging it would loop, or need one more bucket)."""
    logging = _by_bucket(resources, LOGGING)
    destinations = {p.get("targetBucket") for props in logging.values() for p in props}
    for lb in of_type(resources, LOAD_BALANCER):
        logs = plain(lb.props).get("accessLogs") or {}
        if logs.get("enabled") is not False:
            destinations.add(logs.get("bucket"))
    for bucket, name in _buckets(resources):
        if name in destinations or any(p.get("targetBucket") for p in logging.get(name, [])):
            continue
        if is_unknown(name) and logging:
            continue
        yield (
            f"Bucket {name} must log access (S3 server access logs) to the stack's log bucket. Add an "
            "aws.s3.BucketLogging with target_bucket the access-log bucket.",
            bucket.urn,
        )


def _versioned(props):
    return (props.get("versioningConfiguration") or {}).get("status") == "Enabled"


def _ssl_only(props):
    document = parse_json(props.get("policy"), "policy") if not is_unknown(props.get("policy")) else None
    for statement in statements(document):
        condition = statement.get("Condition") or {}
        if (
            statement.get("Effect") == "Deny"
            and str((condition.get("Bool") or {}).get("aws:SecureTransport")).lower() == "false"
        ):
            return True
    return False


def _no_public_acl(props, _args):
    if props.get("acl") in PUBLIC_ACLS:
        yield f"Buckets must not have a public ACL ({props.get('acl')}). Use private and bucket policies."


def _no_public_policy(props, _args):
    document = parse_json(props.get("policy"), "policy")
    for statement in statements(document):
        if statement.get("Effect") == "Allow" and is_public_principal(statement):
            yield "Bucket policies must not allow a public principal. Name the principals that need access."


POLICIES = [
    stack_policy(
        "s3-public-access-block",
        "Checks that every bucket blocks public access with all four flags.",
        _public_access_block,
        severity=Severity.CRITICAL,
    ),
    stack_policy(
        "s3-default-encryption",
        "Checks that every bucket has default encryption.",
        _attached_check(
            ENCRYPTION,
            "Bucket {name} must have default encryption. Add an aws.s3.BucketServerSideEncryptionConfiguration.",
        ),
    ),
    stack_policy(
        "s3-versioning",
        "Checks that every bucket has versioning enabled.",
        _attached_check(
            VERSIONING,
            "Bucket {name} must have versioning enabled. Add an aws.s3.BucketVersioning with status Enabled.",
            _versioned,
        ),
        severity=Severity.MEDIUM,
    ),
    stack_policy(
        "s3-ssl-only",
        "Checks that every bucket policy denies requests without TLS.",
        _attached_check(
            BUCKET_POLICY,
            "Bucket {name} must deny non-TLS requests. Add a bucket policy "
            "statement that denies aws:SecureTransport false.",
            _ssl_only,
        ),
    ),
    stack_policy(
        "s3-access-logging",
        "Checks that every bucket that is not itself a log destination logs access to one.",
        _access_logged,
        severity=Severity.MEDIUM,
    ),
    resource_policy(
        "s3-no-public-acl", "Checks that no bucket ACL is public.", ACL, _no_public_acl, severity=Severity.CRITICAL
    ),
    resource_policy(
        "s3-no-public-bucket-policy",
        "Checks that no bucket policy allows a public principal.",
        BUCKET_POLICY,
        _no_public_policy,
        severity=Severity.CRITICAL,
    ),
]
