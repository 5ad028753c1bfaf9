"""Image tags for deploy: a source digest locally, the build manifest otherwise."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from deploy.errors import DeployError  # noqa: E402
from deploy.images import push_command, read_built_tags, source_digest, source_tags  # noqa: E402


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    pkg = tmp_path / "handlers" / "cosmicai"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VERSION = 1\n")
    (pkg / "worker.py").write_text("def run():\n    return 1\n")
    return tmp_path


def test_source_digest_is_stable_and_follows_the_code(tree: Path) -> None:
    first = source_digest(tree)
    assert source_digest(tree) == first
    (tree / "handlers/cosmicai/worker.py").write_text("def run():\n    return 2\n")
    assert source_digest(tree) != first


def test_source_digest_sees_renames(tree: Path) -> None:
    first = source_digest(tree)
    shutil.move(tree / "handlers/cosmicai/worker.py", tree / "handlers/cosmicai/work.py")
    assert source_digest(tree) != first


def test_source_digest_ignores_caches_and_build_litter(tree: Path) -> None:
    first = source_digest(tree)
    cache = tree / "handlers/cosmicai/__pycache__"
    cache.mkdir()
    (cache / "worker.cpython-311.pyc").write_bytes(b"\0\1")
    egg = tree / "handlers/cosmicai.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("x")
    assert source_digest(tree) == first


def test_source_tags_are_valid_image_tags(tree: Path) -> None:
    tags = source_tags(tree)
    assert set(tags) == {"inference", "orchestration"}
    assert all(t.startswith("src-") and len(t) == 24 for t in tags.values())


def test_source_digest_needs_handlers(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no handlers/"):
        source_digest(tmp_path)


def test_built_tags_come_from_the_images_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "images.json"
    manifest.write_text(json.dumps({"inference": {"tag": "0123456789abcdef", "size_mb": 900},
                                    "orchestration": {"tag": "fedcba9876543210"}}))
    assert read_built_tags(manifest) == {"inference": "0123456789abcdef", "orchestration": "fedcba9876543210"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "is missing: run `make images`"), ("{not json", "is not valid JSON"),
     (json.dumps({"inference": {"tag": "abc"}}), "no tag for image 'orchestration'")],
)
def test_bad_images_manifest_is_named(tmp_path: Path, content: str | None, problem: str) -> None:
    manifest = tmp_path / "images.json"
    if content is not None:
        manifest.write_text(content)
    with pytest.raises(DeployError, match=problem):
        read_built_tags(manifest)


def test_push_goes_through_make_images_with_each_repository() -> None:
    urls = {"inference": "1234.dkr.ecr.us-east-1.amazonaws.com/x-inference",
            "orchestration": "1234.dkr.ecr.us-east-1.amazonaws.com/x-orchestration"}
    cmd = push_command("make", Path("/repo"), urls)
    assert cmd[:4] == ["make", "-C", "/repo", "images"]
    assert "IMAGES_PUSH=1234.dkr.ecr.us-east-1.amazonaws.com" in cmd
    assert ("IMAGES_ARGS=--repository inference=1234.dkr.ecr.us-east-1.amazonaws.com/x-inference "
            "--repository orchestration=1234.dkr.ecr.us-east-1.amazonaws.com/x-orchestration") in cmd


def test_push_refuses_mixed_registries_or_missing_repositories() -> None:
    with pytest.raises(DeployError, match="one ECR registry"):
        push_command("make", Path("/r"), {"inference": "a.example/x", "orchestration": "b.example/y"})
    with pytest.raises(DeployError, match="orchestration"):
        push_command("make", Path("/r"), {"inference": "a.example/x"})
