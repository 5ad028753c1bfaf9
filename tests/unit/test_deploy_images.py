"""Image tags for deploy: a fixed tag locally, the build manifest otherwise."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from deploy.errors import DeployError  # noqa: E402
from deploy.images import local_image_uris, local_tags, push_command, read_built_refs, read_built_tags  # noqa: E402


def test_local_tags_are_fixed_valid_image_tags() -> None:
    tags = local_tags()
    assert tags == {"inference": "local", "orchestration": "local"}
    # The Terraform variables refuse "latest" (immutable repositories).
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", t) and t != "latest" for t in tags.values())


def test_built_tags_come_from_the_images_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "images.json"
    manifest.write_text(
        json.dumps(
            {"inference": {"tag": "0123456789abcdef", "size_mb": 900}, "orchestration": {"tag": "fedcba9876543210"}}
        )
    )
    assert read_built_tags(manifest) == {"inference": "0123456789abcdef", "orchestration": "fedcba9876543210"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "is missing: run `make images`"),
        ("{not json", "is not valid JSON"),
        (json.dumps({"inference": {"tag": "abc"}}), "no tag for image 'orchestration'"),
    ],
)
def test_bad_images_manifest_is_named(tmp_path: Path, content: str | None, problem: str) -> None:
    manifest = tmp_path / "images.json"
    if content is not None:
        manifest.write_text(content)
    with pytest.raises(DeployError, match=problem):
        read_built_tags(manifest)


def test_push_goes_through_make_images_with_each_repository() -> None:
    urls = {
        "inference": "1234.dkr.ecr.us-east-1.amazonaws.com/x-inference",
        "orchestration": "1234.dkr.ecr.us-east-1.amazonaws.com/x-orchestration",
    }
    cmd = push_command("make", Path("/repo"), urls)
    assert cmd[:4] == ["make", "-C", "/repo", "images"]
    assert "IMAGES_PUSH=1234.dkr.ecr.us-east-1.amazonaws.com" in cmd
    assert (
        "IMAGES_ARGS=--repository inference=1234.dkr.ecr.us-east-1.amazonaws.com/x-inference "
        "--repository orchestration=1234.dkr.ecr.us-east-1.amazonaws.com/x-orchestration"
    ) in cmd


def test_push_refuses_mixed_registries_or_missing_repositories() -> None:
    with pytest.raises(DeployError, match="one ECR registry"):
        push_command("make", Path("/r"), {"inference": "a.example/x", "orchestration": "b.example/y"})
    with pytest.raises(DeployError, match="orchestration"):
        push_command("make", Path("/r"), {"inference": "a.example/x"})


def test_docker_mode_uris_name_the_local_builds_under_the_ecr_registry(tmp_path: Path) -> None:
    manifest = tmp_path / "images.json"
    manifest.write_text(
        json.dumps(
            {
                "inference": {"tag": "aa", "local_ref": "cosmicai-inference:aa"},
                "orchestration": {"tag": "bb", "local_ref": "cosmicai-orchestration:bb"},
            }
        )
    )
    registry = "000000000000.dkr.ecr.us-east-1.amazonaws.com"
    urls = {"inference": f"{registry}/other-inference", "orchestration": f"{registry}/other-orchestration"}
    assert local_image_uris(urls, read_built_refs(manifest)) == {
        "inference": f"{registry}/cosmicai-inference:aa",
        "orchestration": f"{registry}/cosmicai-orchestration:bb",
    }
    with pytest.raises(DeployError, match="orchestration"):
        local_image_uris({"inference": urls["inference"]}, read_built_refs(manifest))
    manifest.write_text(json.dumps({"inference": {"tag": "aa"}}))
    with pytest.raises(DeployError, match="make images"):
        read_built_refs(manifest)
