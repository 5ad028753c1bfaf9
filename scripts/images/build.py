"""Build the cosmicai container images with the Docker SDK (legacy builder), tag them
with the content digest of their inputs, enforce the size budgets, write
build/images.json, and optionally push to ECR.

    python scripts/images/build.py [--images inference,orchestration]
        [--base-image cosmicai-base:bookworm] [--runtime-image IMAGE] [--wheel-source wheelhouse|index]
        [--push REGISTRY] [--repository NAME=URI ...] [--force]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
from concurrent.futures import ThreadPoolExecutor
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, BuildError, ImageNotFound

from build_context import stage
from docker_engine import REPO_ROOT, docker_client
from image_spec import IMAGES, ImageSpec
from wheelhouse import LOCK_FILE, Pin, download, pip_wheel, requirements_text, resolve

BUILD_DIR = REPO_ROOT / "build"
MANIFEST = BUILD_DIR / "images.json"
WHEELHOUSE = BUILD_DIR / "wheelhouse"
DEFAULT_BASE = "cosmicai-base:bookworm"


class ImageBudgetError(RuntimeError):
    """An image is larger than its size budget."""


class ImageBuildError(RuntimeError):
    """The engine failed to build an image; the message holds the build log tail."""


def resolved_pins(spec: ImageSpec) -> list[Pin]:
    """Pins for `spec`, cached in build/images/ by the lock file's and the spec's content."""
    key = hashlib.sha256(
        LOCK_FILE.read_bytes() + repr((spec.roots, sorted(spec.exclude))).encode()
    ).hexdigest()[:16]
    cache = BUILD_DIR / "images" / f"pins-{spec.name}-{key}.json"
    if cache.is_file():
        return [Pin(**p) for p in json.loads(cache.read_text())]
    pins = resolve(spec.roots, spec.exclude)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([p.__dict__ for p in pins], indent=1))
    return pins


def base_identity(client: docker.DockerClient, base: str) -> str:
    """The local image id of `base` when present (so a rebuilt base changes tags), else its name."""
    try:
        return client.images.get(base).id
    except ImageNotFound:
        return base


def runtime_image_for(base: str, runtime: str | None) -> str:
    """The final stage's base: as given, else base.sh's slim variant of our base, else the base itself."""
    if runtime:
        return runtime
    return f"{base}-runtime" if base.startswith("cosmicai-base:") else base


def build_one(client: docker.DockerClient, spec: ImageSpec, base: str, runtime: str, wheel_source: str,
              force: bool, log: Any, nocache: bool = False) -> dict[str, Any]:
    """Build (or reuse) one image; returns its manifest entry."""
    pins = resolved_pins(spec)
    wheels = download(pins, WHEELHOUSE) if wheel_source == "wheelhouse" else []
    if wheel_source == "wheelhouse":
        wheels.append(pip_wheel(WHEELHOUSE))
    buildargs = {"BASE_IMAGE": base, "RUNTIME_IMAGE": runtime, "WHEEL_SOURCE": wheel_source}
    bases = f"{base_identity(client, base)} {base_identity(client, runtime)}"
    ctx, digest, facts = stage(spec, wheels, requirements_text(pins), bases, buildargs, BUILD_DIR / "images" / "context")
    tag = digest[:16]
    ref = f"{spec.repository}:{tag}"
    cached = False
    try:
        client.images.get(ref)
        cached = not force
    except ImageNotFound:
        pass
    started = time.monotonic()
    if not cached:
        log(f"[{spec.name}] building {ref} from {ctx.relative_to(REPO_ROOT)} (base {base}, runtime {runtime}, wheels from {wheel_source})")
        lines: list[str] = []
        try:
            for chunk in client.api.build(
                path=str(ctx), tag=ref, buildargs=buildargs, network_mode="host",
                rm=True, forcerm=True, pull=False, decode=True, nocache=nocache,
                labels={"org.cosmicai.image": spec.name, "org.cosmicai.digest": digest},
            ):
                if "stream" in chunk:
                    text = chunk["stream"].rstrip()
                    if text:
                        lines.append(text)
                        if text.startswith("Step "):
                            log(f"[{spec.name}] {text}")
                if "error" in chunk:
                    raise ImageBuildError(f"[{spec.name}] {chunk['error']}\n" + "\n".join(lines[-30:]))
        except (APIError, BuildError) as exc:
            raise ImageBuildError(f"[{spec.name}] engine refused the build: {exc}") from exc
    image = client.images.get(ref)
    client.api.tag(image.id, spec.repository, "latest")
    size_mb = image.attrs["Size"] / 1e6
    entry = {
        "tag": tag, "local_ref": ref, "size_mb": round(size_mb, 1), "budget_mb": spec.budget_mb,
        "image_id": image.id, "cached": cached, "build_s": round(time.monotonic() - started, 1), **facts,
    }
    how = "cached" if cached else f"built in {entry['build_s']} s"
    log(f"[{spec.name}] {ref}: {size_mb:.1f} MB (budget {spec.budget_mb:.0f} MB), {how}")
    if facts.get("weights_placeholder") == "true":
        log(f"[{spec.name}] WARNING: baked PLACEHOLDER random-init weights ({facts['weights']}): "
            "the packaged demo weights are absent")
    return entry


def prune_old(client: docker.DockerClient, manifest: dict[str, Any], log: Any) -> None:
    """Untag our images other than :latest and the manifest's, then drop build layers over an hour old."""
    keep = {entry["local_ref"] for entry in manifest.values()}
    for spec in IMAGES.values():
        for image in client.images.list(name=spec.repository):
            for ref in image.tags:
                if ref.startswith(f"{spec.repository}:") and not ref.endswith(":latest") and ref not in keep:
                    client.images.remove(ref, noprune=False)
                    log(f"removed {ref}")
    # Recent dangling layers are the builder stages the current images were cached from.
    freed = client.images.prune(filters={"dangling": True, "until": "1h"}).get("SpaceReclaimed") or 0
    log(f"pruned old build layers: {freed / 1e6:.0f} MB")


def ecr_login(registry: str) -> dict[str, str]:
    """Docker auth config for an ECR registry from the standard AWS credential chain."""
    import boto3

    region = registry.split(".")[3] if ".ecr." in registry else None
    token = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    return {"username": user, "password": password, "serveraddress": token["proxyEndpoint"]}


def ecr_has_tag(registry: str, repo_uri: str, tag: str) -> bool:
    """Whether the ECR repository already holds `tag` (immutable tags: never push a tag twice)."""
    import boto3
    from botocore.exceptions import ClientError

    region = registry.split(".")[3] if ".ecr." in registry else None
    try:
        boto3.client("ecr", region_name=region).describe_images(
            repositoryName=repo_uri.split("/", 1)[1], imageIds=[{"imageTag": tag}])
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
            return False
        raise


def push(client: docker.DockerClient, manifest: dict[str, Any], registry: str,
         repositories: dict[str, str], log: Any) -> None:
    """Tag and push each built image to its ECR repository (unless the tag is there); records `remote_ref`."""
    auth = ecr_login(registry)
    for name, entry in manifest.items():
        repo = repositories.get(name, f"{registry.rstrip('/')}/{IMAGES[name].repository}")
        if ecr_has_tag(registry, repo, entry["tag"]):
            log(f"[{name}] {repo}:{entry['tag']} is already in ECR (same content digest); not pushed")
            entry["remote_ref"] = f"{repo}:{entry['tag']}"
            continue
        client.api.tag(entry["local_ref"], repo, entry["tag"])
        log(f"[{name}] pushing {repo}:{entry['tag']}")
        for chunk in client.api.push(repo, tag=entry["tag"], auth_config=auth, stream=True, decode=True):
            if "error" in chunk:
                raise ImageBuildError(f"[{name}] push to {repo} failed: {chunk['error']}")
        entry["remote_ref"] = f"{repo}:{entry['tag']}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", default="inference,orchestration", help="comma-separated subset of %s" % list(IMAGES))
    p.add_argument("--base-image", default=DEFAULT_BASE, help="BASE_IMAGE build arg (default %(default)s)")
    p.add_argument("--runtime-image", help="RUNTIME_IMAGE build arg, the final stage's base "
                   f"(default: {DEFAULT_BASE}-runtime for the default base, else the base image)")
    p.add_argument("--wheel-source", choices=("wheelhouse", "index"), default="wheelhouse",
                   help="wheelhouse: offline, from build/wheelhouse; index: PyPI + PyTorch CPU index inside the build")
    p.add_argument("--push", metavar="REGISTRY", help="ECR registry host to push to (e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com)")
    p.add_argument("--repository", action="append", default=[], metavar="NAME=URI",
                   help="ECR repository URI for an image (default REGISTRY/cosmicai-NAME)")
    p.add_argument("--prefetch", action="store_true",
                   help="only resolve and download the wheels (runs beside the base image build)")
    p.add_argument("--force", action="store_true", help="rebuild even when an image with the tag exists")
    p.add_argument("--prune", action="store_true",
                   help="only remove our stale local tags and build layers older than an hour")
    p.add_argument("--serial", action="store_true", help="build the images one after the other")
    p.add_argument("--no-cache", action="store_true", help="with --force: rebuild every layer (times a first build)")
    p.add_argument("--manifest", type=Path, default=MANIFEST, help="where to write the manifest (default %(default)s)")
    return p.parse_args(argv)


@contextlib.contextmanager
def exclusive(log: Any) -> Any:
    """One build at a time per checkout: builds share the staged contexts and the wheelhouse."""
    path = BUILD_DIR / "images" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another image build of this checkout is running; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    with exclusive(log):
        return _main(argv, log)


def _main(argv: list[str] | None, log: Any) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.images.split(",") if n.strip()]
    unknown = sorted(set(names) - set(IMAGES))
    if unknown:
        print(f"build.py: unknown image(s) {unknown}; known: {list(IMAGES)}", file=sys.stderr)
        return 2
    repositories = dict(r.split("=", 1) for r in args.repository)
    # Wheels first, one image after the other (they share the wheelhouse); builds may then overlap.
    if args.wheel_source == "wheelhouse":
        for name in names:
            wheels = download(resolved_pins(IMAGES[name]), WHEELHOUSE)
            log(f"[{name}] {len(wheels)} wheels in {WHEELHOUSE.relative_to(REPO_ROOT)}")
        pip_wheel(WHEELHOUSE)
    if args.prefetch:
        return 0
    client = docker_client()
    manifest: dict[str, Any] = json.loads(args.manifest.read_text()) if args.manifest.is_file() else {}
    if args.prune:
        prune_old(client, manifest, log)
        return 0
    runtime = runtime_image_for(args.base_image, args.runtime_image)

    def one(name: str) -> dict[str, Any]:
        # A client per thread: the SDK's HTTP session is not meant to be shared.
        return build_one(docker_client(), IMAGES[name], args.base_image, runtime, args.wheel_source, args.force,
                         log, nocache=args.no_cache)

    # Both builds at once: much of a build waits on pip's unzip, strip and layer commits, not the CPU.
    with ThreadPoolExecutor(max_workers=1 if args.serial else len(names)) as pool:
        entries = dict(zip(names, pool.map(one, names)))
    over = []
    for name, entry in entries.items():
        manifest[name] = entry
        if entry["size_mb"] > entry["budget_mb"]:
            over.append(f"{name} {entry['size_mb']} MB > {entry['budget_mb']} MB")
    args.manifest.parent.mkdir(parents=True, exist_ok=True)
    args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    if over:
        raise ImageBudgetError("over budget: " + "; ".join(over))
    if args.push:
        push(client, {n: manifest[n] for n in names}, args.push, repositories, log)
        args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    for name in names:
        print(f"{name}\t{manifest[name]['local_ref']}\t{manifest[name]['size_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
