"""What AWS authorizes for one API call: IAM actions, resource ARNs and request condition keys.

Plain values in, plain values out (no LocalStack imports), so the mapping is unit-testable from
the project venv. Only the services a cosmic-ai function or state machine calls are mapped
operation by operation (S3, Lambda, CloudWatch Logs, Step Functions, STS); any other operation is
authorized as `<service>:<Operation>` on `*`, which only a policy granting that action on every
resource allows: fail-closed, never laxer than AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

# IAM action prefixes where the API's service name differs.
ACTION_PREFIX = {"stepfunctions": "states", "cloudwatch": "cloudwatch", "logs": "logs"}

# S3 operations whose IAM action is not "s3:<Operation>" (AWS's "Actions, resources and condition
# keys for Amazon S3" table and the S3 API reference's "Permissions" sections).
_S3_BUCKET_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "GetBucketLocation": "s3:GetBucketLocation",
    "DeleteObjects": "s3:DeleteObject",
}
_S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "GetObjectAttributes": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListParts": "s3:ListMultipartUploadParts",
    "DeleteObject": "s3:DeleteObject",
    "GetObjectTagging": "s3:GetObjectTagging",
    "PutObjectTagging": "s3:PutObjectTagging",
}
# With a VersionId the object actions become their *Version variants.
_S3_VERSIONED = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
}
# ListObjects(V2) request parameters that are S3 condition keys.
_S3_LIST_KEYS = {"Prefix": "s3:prefix", "Delimiter": "s3:delimiter", "MaxKeys": "s3:max-keys"}

_LAMBDA_ACTIONS = {
    "Invoke": "lambda:InvokeFunction",
    "InvokeAsync": "lambda:InvokeFunction",
    "InvokeWithResponseStream": "lambda:InvokeFunction",
}


@dataclass(frozen=True)
class Where:
    """The call's partition, region and account (the ARNs of its resources are built from them)."""

    region: str
    account: str
    partition: str = "aws"


@dataclass(frozen=True)
class Authorization:
    """One (action, resource) pair AWS checks for a call, with the call's condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


def s3_object_arn(bucket: str, key: str, partition: str = "aws") -> str:
    return f"arn:{partition}:s3:::{bucket}/{key}"


def s3_bucket_arn(bucket: str, partition: str = "aws") -> str:
    return f"arn:{partition}:s3:::{bucket}"


def _s3(operation: str, params: Mapping[str, Any], where: Where) -> list[Authorization]:
    bucket = params.get("Bucket")
    if operation == "ListBuckets":
        return [Authorization("s3:ListAllMyBuckets", "*")]
    if not bucket:
        return [Authorization(f"s3:{operation}", "*")]
    p = where.partition
    if operation in _S3_BUCKET_ACTIONS:
        context = {}
        if operation in ("ListObjects", "ListObjectsV2", "ListObjectVersions"):
            # Only the parameters the request carries: an absent Prefix is an absent s3:prefix,
            # which makes a StringLike s3:prefix condition false (HeadBucket never carries it).
            context = {ck: str(params[pk]) for pk, ck in _S3_LIST_KEYS.items() if params.get(pk) is not None}
        if operation == "DeleteObjects":
            objects = (params.get("Delete") or {}).get("Objects") or []
            return [Authorization("s3:DeleteObject", s3_object_arn(bucket, o.get("Key", ""), p)) for o in objects]
        return [Authorization(_S3_BUCKET_ACTIONS[operation], s3_bucket_arn(bucket, p), context)]
    key = params.get("Key")
    if key is None:
        # bucket configuration (GetBucketPolicy, PutBucketTagging, ...): s3:<Operation> on the bucket
        return [Authorization(f"s3:{operation}", s3_bucket_arn(bucket, p))]
    action = _S3_OBJECT_ACTIONS.get(operation, f"s3:{operation}")
    if params.get("VersionId"):
        action = _S3_VERSIONED.get(action, action)
    out = [Authorization(action, s3_object_arn(bucket, key, p))]
    if operation in ("CopyObject", "UploadPartCopy"):
        source = _copy_source(params.get("CopySource"))
        if source:
            src_action = "s3:GetObjectVersion" if source[2] else "s3:GetObject"
            out.append(Authorization(src_action, s3_object_arn(source[0], source[1], p)))
    return out


def _copy_source(value: Any) -> tuple[str, str, str | None] | None:
    """(bucket, key, version) of a CopySource given as "bucket/key?versionId=v" or a dict."""
    if isinstance(value, Mapping):
        return str(value.get("Bucket")), str(value.get("Key")), value.get("VersionId")
    if not isinstance(value, str):
        return None
    path, _, query = unquote(value).lstrip("/").partition("?versionId=")
    bucket, _, key = path.partition("/")
    return bucket, key, query or None


def lambda_function_arn(name: str, qualifier: str | None, where: Where) -> str:
    """Full ARN from a FunctionName given as a name, "name:qualifier", a partial or a full ARN."""
    if name.startswith("arn:"):
        arn = name
    else:
        parts = name.split(":")
        if len(parts) >= 3 and parts[1] == "function":  # "<account>:function:<name>[:qualifier]"
            arn = f"arn:{where.partition}:lambda:{where.region}:{name}"
        else:
            arn = f"arn:{where.partition}:lambda:{where.region}:{where.account}:function:{name}"
    if qualifier and arn.count(":") == 6:
        arn = f"{arn}:{qualifier}"
    return arn


def _lambda(operation: str, params: Mapping[str, Any], where: Where) -> list[Authorization]:
    action = _LAMBDA_ACTIONS.get(operation, f"lambda:{operation}")
    name = params.get("FunctionName")
    if not name:
        return [Authorization(action, "*")]
    return [Authorization(action, lambda_function_arn(str(name), params.get("Qualifier"), where))]


def _logs(operation: str, params: Mapping[str, Any], where: Where) -> list[Authorization]:
    group = params.get("logGroupName")
    if not group:
        return [Authorization(f"logs:{operation}", "*")]
    base = f"arn:{where.partition}:logs:{where.region}:{where.account}:log-group:{group}"
    stream = params.get("logStreamName")
    # Stream-level actions are evaluated against the stream ARN, which is why least-privilege
    # policies grant them on "log-group:<name>:*".
    if stream is not None and operation in ("CreateLogStream", "PutLogEvents", "GetLogEvents", "DeleteLogStream"):
        return [Authorization(f"logs:{operation}", f"{base}:log-stream:{stream}")]
    return [Authorization(f"logs:{operation}", base)]


def _states(operation: str, params: Mapping[str, Any], where: Where) -> list[Authorization]:
    for field_name in ("stateMachineArn", "executionArn", "mapRunArn", "activityArn"):
        arn = params.get(field_name)
        if arn:
            return [Authorization(f"states:{operation}", str(arn))]
    return [Authorization(f"states:{operation}", "*")]


def _sts(operation: str, params: Mapping[str, Any], where: Where) -> list[Authorization]:
    if operation == "GetCallerIdentity":
        return []  # AWS answers it whatever the policies say
    role = params.get("RoleArn")
    return [Authorization(f"sts:{operation}", str(role) if role else "*")]


_MAPPERS = {"s3": _s3, "lambda": _lambda, "logs": _logs, "stepfunctions": _states, "sts": _sts}


def authorizations(service: str, operation: str, params: Mapping[str, Any], where: Where) -> list[Authorization]:
    """Every (action, resource) AWS checks for this call; [] when AWS checks nothing."""
    mapper = _MAPPERS.get(service)
    if mapper is not None:
        return mapper(operation, params, where)
    return [Authorization(f"{ACTION_PREFIX.get(service, service)}:{operation}", "*")]


def access_denied_message(principal: str, action: str, resource: str, reason: str) -> str:
    """AWS's wording: 'User: <arn> is not authorized to perform: <action> on resource: <arn> because ...'."""
    return f"User: {principal} is not authorized to perform: {action} on resource: {resource} because {reason}"
