"""Roles for functions the tests create by hand: the local cloud enforces IAM as AWS does, so a
function's role must exist and allow what the function does (on AWS as here)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["scoped_role"]

TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
        }
    ],
}


@contextmanager
def scoped_role(iam: Any, name: str, statements: list[dict[str, Any]]) -> Iterator[str]:
    """A role Lambda and Step Functions may assume, with `statements` inline; deleted afterwards."""
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="test-access",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    try:
        yield arn
    finally:
        iam.delete_role_policy(RoleName=name, PolicyName="test-access")
        iam.delete_role(RoleName=name)
