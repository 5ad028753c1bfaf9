"""The stack's own ECR repositories at destroy time.

ECR refuses to delete a repository that still holds images, and Terraform's
`force_delete` only applies once it is in the state (a stack deployed with
force_destroy = false keeps `false` there). The repositories hold nothing but build
outputs of this tree, tagged with their content digests, which `make deploy` rebuilds
and pushes again; so `make destroy` empties them first. Buckets are left alone: they
hold data, and force_destroy decides for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DeployError

if TYPE_CHECKING:  # boto3-stubs, a dev dependency: annotations only
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecr.type_defs import ImageIdentifierTypeDef

# BatchDeleteImage takes at most 100 image ids a call.
_BATCH = 100


class EcrCleanupError(DeployError):
    """Images could not be deleted from one of the stack's repositories."""


def repositories_in_state(state_file: Path) -> list[str]:
    """Names of the aws_ecr_repository resources a Terraform state holds (managed ones only)."""
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    names = []
    for res in state.get("resources", []):
        if res.get("type") == "aws_ecr_repository" and res.get("mode") == "managed":
            for inst in res.get("instances", []):
                name = (inst.get("attributes") or {}).get("name")
                if name:
                    names.append(str(name))
    return sorted(names)


def empty_repositories(ecr: ECRClient, names: list[str], log: Callable[[str], None] = print) -> int:
    """Delete every image (tagged or not) from the named repositories; returns how many went.

    A repository that is already gone is skipped: destroy may be re-run after a partial one.
    """
    from botocore.exceptions import ClientError

    total = 0
    for name in names:
        try:
            ids = [
                img
                for page in ecr.get_paginator("list_images").paginate(repositoryName=name)
                for img in page.get("imageIds", [])
            ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
                continue
            raise EcrCleanupError(f"cannot list the images of ECR repository {name}: {exc}") from exc
        # A tagged image is listed once per tag; one delete by digest removes all its tags.
        digests = list(dict.fromkeys(img["imageDigest"] for img in ids if img.get("imageDigest")))
        if not digests:
            continue
        log(
            f"destroy: deleting {len(digests)} image(s) from ECR repository {name} "
            "(build outputs of this tree; `make deploy` builds and pushes them again)"
        )
        for start in range(0, len(digests), _BATCH):
            batch: list[ImageIdentifierTypeDef] = [{"imageDigest": d} for d in digests[start : start + _BATCH]]
            try:
                failures = ecr.batch_delete_image(repositoryName=name, imageIds=batch).get("failures", [])
            except ClientError as exc:
                raise EcrCleanupError(f"cannot delete images from ECR repository {name}: {exc}") from exc
            # An image another delete already removed is not a failure.
            real = [f for f in failures if f.get("failureCode") != "ImageNotFound"]
            if real:
                raise EcrCleanupError(f"ECR refused to delete {len(real)} image(s) from {name}: {real[:3]}")
        total += len(digests)
    return total
