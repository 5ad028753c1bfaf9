"""make destroy empties the stack's own ECR repositories first (ECR refuses to delete non-empty ones)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from deploy.ecr import EcrCleanupError, empty_repositories, repositories_in_state  # noqa: E402

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def _ecr() -> object:
    return boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")


def test_repositories_come_from_the_state(tmp_path: Path) -> None:
    state = tmp_path / "terraform.tfstate"
    state.write_text(
        json.dumps(
            {
                "version": 4,
                "resources": [
                    {
                        "mode": "managed",
                        "type": "aws_ecr_repository",
                        "name": "this",
                        "instances": [
                            {"index_key": "inference", "attributes": {"name": "x-inference"}},
                            {"index_key": "orchestration", "attributes": {"name": "x-orchestration"}},
                        ],
                    },
                    {
                        "mode": "data",
                        "type": "aws_ecr_repository",
                        "name": "other",
                        "instances": [{"attributes": {"name": "not-ours"}}],
                    },
                    {
                        "mode": "managed",
                        "type": "aws_s3_bucket",
                        "name": "b",
                        "instances": [{"attributes": {"name": "bucket"}}],
                    },
                ],
            }
        )
    )
    assert repositories_in_state(state) == ["x-inference", "x-orchestration"]
    assert repositories_in_state(tmp_path / "absent.tfstate") == []


def test_every_image_is_deleted_once_by_digest_and_gone_repositories_are_skipped() -> None:
    ecr = _ecr()
    logged: list[str] = []
    with Stubber(ecr) as stub:
        stub.add_response(
            "list_images",
            {
                "imageIds": [{"imageDigest": DIGEST_A, "imageTag": "t1"}, {"imageDigest": DIGEST_A, "imageTag": "t2"}],
                "nextToken": "n",
            },
            {"repositoryName": "x-inference"},
        )
        stub.add_response(
            "list_images",
            {"imageIds": [{"imageDigest": DIGEST_B}]},
            {"repositoryName": "x-inference", "nextToken": "n"},
        )
        stub.add_response(
            "batch_delete_image",
            {
                "failures": [
                    {"imageId": {"imageDigest": DIGEST_B}, "failureCode": "ImageNotFound", "failureReason": "gone"}
                ]
            },
            {"repositoryName": "x-inference", "imageIds": [{"imageDigest": DIGEST_A}, {"imageDigest": DIGEST_B}]},
        )
        stub.add_client_error(
            "list_images", "RepositoryNotFoundException", expected_params={"repositoryName": "x-orchestration"}
        )
        assert empty_repositories(ecr, ["x-inference", "x-orchestration"], logged.append) == 2
    assert len(logged) == 1 and "x-inference" in logged[0] and "make deploy" in logged[0]


def test_a_refused_delete_is_a_named_error() -> None:
    ecr = _ecr()
    with Stubber(ecr) as stub:
        stub.add_response("list_images", {"imageIds": [{"imageDigest": DIGEST_A}]})
        stub.add_response(
            "batch_delete_image",
            {"failures": [{"imageId": {"imageDigest": DIGEST_A}, "failureCode": "KmsError", "failureReason": "no"}]},
        )
        with pytest.raises(EcrCleanupError, match="refused to delete 1 image"):
            empty_repositories(ecr, ["x-inference"], lambda _: None)
