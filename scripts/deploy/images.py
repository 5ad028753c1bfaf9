"""Image tags for the functions: built-image digests, or a source digest locally."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from .errors import DeployError

IMAGE_NAMES = ("inference", "orchestration")
# What goes into the code the functions run; caches and build litter do not.
_SKIP_DIRS = {"__pycache__", ".pytest_cache", "build", "dist"}
_SKIP_SUFFIXES = (".pyc", ".pyo")


def source_digest(root: Path) -> str:
    """A stable digest of handlers/ (the code the process-mode executor runs)."""
    src = root / "handlers"
    if not src.is_dir():
        raise DeployError(f"no handlers/ directory under {root}")
    h = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        rel = path.relative_to(src)
        if any(part in _SKIP_DIRS or part.endswith(".egg-info") for part in rel.parts[:-1]):
            continue
        if path.suffix in _SKIP_SUFFIXES:
            continue
        h.update(str(rel).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def source_tags(root: Path) -> dict[str, str]:
    """Tags for the process-mode executor, which runs the tree, not an image."""
    tag = "src-" + source_digest(root)[:20]
    return {name: tag for name in IMAGE_NAMES}


def read_built_tags(manifest: Path) -> dict[str, str]:
    """Tags of the images `make images` built, from build/images.json."""
    try:
        data = json.loads(manifest.read_text())
    except FileNotFoundError as exc:
        raise DeployError(f"{manifest} is missing: run `make images` first") from exc
    except json.JSONDecodeError as exc:
        raise DeployError(f"{manifest} is not valid JSON ({exc}); rebuild with `make images`") from exc
    tags = {}
    for name in IMAGE_NAMES:
        entry = data.get(name)
        if not isinstance(entry, dict) or not entry.get("tag"):
            raise DeployError(f"{manifest} has no tag for image {name!r}; rebuild with `make images`")
        tags[name] = str(entry["tag"])
    return tags


def build_images(make: str, root: Path) -> None:
    """Build both images with the project's own target (`make images`)."""
    proc = subprocess.run([make, "-C", str(root), "images"])
    if proc.returncode != 0:
        raise DeployError(f"`make images` failed (exit {proc.returncode}); see its output above")


def push_command(make: str, root: Path, repository_urls: dict[str, str]) -> list[str]:
    """`make images` with the push settings of the images tooling, one repository per image."""
    missing = [name for name in IMAGE_NAMES if name not in repository_urls]
    if missing:
        raise DeployError(f"no ECR repository for image(s) {missing}; got {sorted(repository_urls)}")
    registries = {repository_urls[name].split("/", 1)[0] for name in IMAGE_NAMES}
    if len(registries) != 1:
        raise DeployError(f"expected one ECR registry, got {sorted(registries)}")
    repos = " ".join(f"--repository {name}={repository_urls[name]}" for name in IMAGE_NAMES)
    return [make, "-C", str(root), "images", f"IMAGES_PUSH={registries.pop()}", f"IMAGES_ARGS={repos}"]


def push_images(make: str, root: Path, repository_urls: dict[str, str], env: dict[str, str]) -> None:
    """Push the built images (already tagged with their content digests) to their ECR repositories."""
    proc = subprocess.run(push_command(make, root, repository_urls), env=env)
    if proc.returncode != 0:
        raise DeployError(f"pushing images failed (exit {proc.returncode}); see its output above")
