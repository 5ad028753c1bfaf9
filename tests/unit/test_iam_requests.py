"""What the local cloud authorizes for an API call: action, resource ARN and condition keys, as AWS
documents them ("Actions, resources, and condition keys" per service; S3 API "Permissions")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "localstack_ext"))

from cosmicai_localstack.iam_requests import Authorization, Where, authorizations, lambda_function_arn  # noqa: E402

HERE = Where(region="eu-west-1", account="111122223333")


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        # HeadBucket is s3:ListBucket on the bucket and carries no s3:prefix (the Init bug of issue 14)
        ("s3", "HeadBucket", {"Bucket": "b"}, [Authorization("s3:ListBucket", "arn:aws:s3:::b", {})]),
        (
            "s3",
            "ListObjectsV2",
            {"Bucket": "b", "Prefix": "runs/", "MaxKeys": 1},
            [Authorization("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "runs/", "s3:max-keys": "1"})],
        ),
        ("s3", "ListObjectsV2", {"Bucket": "b"}, [Authorization("s3:ListBucket", "arn:aws:s3:::b", {})]),
        ("s3", "HeadObject", {"Bucket": "b", "Key": "k/x"}, [Authorization("s3:GetObject", "arn:aws:s3:::b/k/x")]),
        (
            "s3",
            "GetObject",
            {"Bucket": "b", "Key": "k", "VersionId": "v1"},
            [Authorization("s3:GetObjectVersion", "arn:aws:s3:::b/k")],
        ),
        ("s3", "UploadPart", {"Bucket": "b", "Key": "k"}, [Authorization("s3:PutObject", "arn:aws:s3:::b/k")]),
        (
            "s3",
            "ListParts",
            {"Bucket": "b", "Key": "k"},
            [Authorization("s3:ListMultipartUploadParts", "arn:aws:s3:::b/k")],
        ),
        (
            "s3",
            "CopyObject",
            {"Bucket": "b", "Key": "k", "CopySource": "src/a%20b?versionId=7"},
            [
                Authorization("s3:PutObject", "arn:aws:s3:::b/k"),
                Authorization("s3:GetObjectVersion", "arn:aws:s3:::src/a b"),
            ],
        ),
        (
            "s3",
            "DeleteObjects",
            {"Bucket": "b", "Delete": {"Objects": [{"Key": "x"}, {"Key": "y"}]}},
            [
                Authorization("s3:DeleteObject", "arn:aws:s3:::b/x"),
                Authorization("s3:DeleteObject", "arn:aws:s3:::b/y"),
            ],
        ),
        ("s3", "GetBucketPolicy", {"Bucket": "b"}, [Authorization("s3:GetBucketPolicy", "arn:aws:s3:::b")]),
        ("s3", "ListBuckets", {}, [Authorization("s3:ListAllMyBuckets", "*")]),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "f", "Qualifier": "3"},
            [Authorization("lambda:InvokeFunction", "arn:aws:lambda:eu-west-1:111122223333:function:f:3")],
        ),
        (
            "logs",
            "PutLogEvents",
            {"logGroupName": "/aws/lambda/f", "logStreamName": "2026/s"},
            [
                Authorization(
                    "logs:PutLogEvents", "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/f:log-stream:2026/s"
                )
            ],
        ),
        (
            "logs",
            "CreateLogGroup",
            {"logGroupName": "/g"},
            [Authorization("logs:CreateLogGroup", "arn:aws:logs:eu-west-1:111122223333:log-group:/g")],
        ),
        (
            "stepfunctions",
            "DescribeExecution",
            {"executionArn": "arn:aws:states:eu-west-1:1:execution:m/l:i"},
            [Authorization("states:DescribeExecution", "arn:aws:states:eu-west-1:1:execution:m/l:i")],
        ),
        ("sts", "GetCallerIdentity", {}, []),
        # unmapped services fail closed: only an action-wide grant on "*" allows them
        ("dynamodb", "GetItem", {"TableName": "t"}, [Authorization("dynamodb:GetItem", "*")]),
    ],
)
def test_authorizations(service: str, operation: str, params: dict, expected: list[Authorization]) -> None:
    assert authorizations(service, operation, params, HERE) == expected


@pytest.mark.parametrize(
    ("name", "qualifier", "arn"),
    [
        ("f", None, "arn:aws:lambda:eu-west-1:111122223333:function:f"),
        ("f:live", None, "arn:aws:lambda:eu-west-1:111122223333:function:f:live"),
        ("999:function:f", None, "arn:aws:lambda:eu-west-1:999:function:f"),
        ("arn:aws:lambda:us-east-1:1:function:f", "$LATEST", "arn:aws:lambda:us-east-1:1:function:f:$LATEST"),
        ("arn:aws:lambda:us-east-1:1:function:f:7", None, "arn:aws:lambda:us-east-1:1:function:f:7"),
    ],
)
def test_lambda_function_names_become_the_arn_iam_checks(name: str, qualifier: str | None, arn: str) -> None:
    assert lambda_function_arn(name, qualifier, HERE) == arn
