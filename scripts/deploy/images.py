"""Image tags for the functions: built-image digests, or a fixed local tag."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from .errors import DeployError

IMAGE_NAMES = ("inference", "orchestration")
# The process-mode executor runs the project tree, not an image, so the local URI is
# a fixed `<repository_url>:local`: LocalStack only needs a non-empty ImageUri, and a
# constant keeps `make deploy` a no-op while people edit handlers/ in the same tree.
LOCAL_TAG = "local"


def local_tags() -> dict[str, str]:
    """Tags for the process-mode executor (no image is built or pushed)."""
    return {name: LOCAL_TAG for name in IMAGE_NAMES}


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


def read_built_refs(manifest: Path) -> dict[str, str]:
    """Local references (`<repo>:<tag>`) of the images `make images` built."""
    data = json.loads(manifest.read_text()) if manifest.is_file() else {}
    refs = {name: str((data.get(name) or {}).get("local_ref") or "") for name in IMAGE_NAMES}
    missing = [name for name, ref in refs.items() if ":" not in ref]
    if missing:
        raise DeployError(f"{manifest} has no local_ref for image(s) {missing}; rebuild with `make images`")
    return refs


def local_image_uris(repository_urls: dict[str, str], refs: dict[str, str]) -> dict[str, str]:
    """Docker-mode URIs: the ECR registry plus the local build's `<repo>:<tag>`, which the
    executor maps back to that local image whatever the stack's name_prefix is."""
    missing = [name for name in IMAGE_NAMES if name not in repository_urls]
    if missing:
        raise DeployError(f"no ECR repository for image(s) {missing}; got {sorted(repository_urls)}")
    return {name: f"{repository_urls[name].split('/', 1)[0]}/{refs[name]}" for name in IMAGE_NAMES}


def images_command(make: str, root: Path, target: str, architecture: str) -> list[str]:
    """`make images` for a target: its default base (python:3.11-slim for aws) and the
    functions' architecture as the docker --platform. A BASE_IMAGE the user gave make
    still wins: command-line variables reach this sub-make through MAKEFLAGS."""
    return [make, "-C", str(root), "images", f"TARGET={target}", f"ARCHITECTURE={architecture}"]


def build_images(make: str, root: Path, target: str = "local", architecture: str = "x86_64") -> None:
    """Build both images with the project's own target (`make images`)."""
    proc = subprocess.run(images_command(make, root, target, architecture))
    if proc.returncode != 0:
        raise DeployError(f"`make images` failed (exit {proc.returncode}); see its output above")


def push_command(
    make: str, root: Path, repository_urls: dict[str, str], target: str = "aws", architecture: str = "x86_64"
) -> list[str]:
    """`make images` with the push settings of the images tooling, one repository per image
    (the same target and architecture as the build, so the same tags)."""
    missing = [name for name in IMAGE_NAMES if name not in repository_urls]
    if missing:
        raise DeployError(f"no ECR repository for image(s) {missing}; got {sorted(repository_urls)}")
    registries = {repository_urls[name].split("/", 1)[0] for name in IMAGE_NAMES}
    if len(registries) != 1:
        raise DeployError(f"expected one ECR registry, got {sorted(registries)}")
    repos = " ".join(f"--repository {name}={repository_urls[name]}" for name in IMAGE_NAMES)
    return [
        *images_command(make, root, target, architecture),
        f"IMAGES_PUSH={registries.pop()}",
        f"IMAGES_ARGS={repos}",
    ]


def push_images(
    make: str,
    root: Path,
    repository_urls: dict[str, str],
    env: dict[str, str],
    target: str = "aws",
    architecture: str = "x86_64",
) -> None:
    """Push the built images (already tagged with their content digests) to their ECR repositories."""
    proc = subprocess.run(push_command(make, root, repository_urls, target, architecture), env=env)
    if proc.returncode != 0:
        raise DeployError(f"pushing images failed (exit {proc.returncode}); see its output above")
