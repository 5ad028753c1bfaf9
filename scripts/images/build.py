"""Build the cosmicai container images with the Docker SDK (legacy builder), tag them
with the content digest of their inputs, enforce the size budgets, write
build/images.json, and optionally push to ECR.

    python scripts/images/build.py [--images inference,orchestration] [--architecture x86_64|arm64]
        [--base-image cosmicai-base:bookworm] [--runtime-image IMAGE] [--wheel-source wheelhouse|index]
        [--push REGISTRY] [--repository NAME=URI ...] [--force]

Every build runs with the docker --platform of the functions' architecture (x86_64 ->
linux/amd64, arm64 -> linux/arm64), whatever machine builds it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from docker.errors import APIError, BuildError, ImageNotFound

import docker
from build_context import ContextError, stage
from docker_engine import REPO_ROOT, EngineUnavailableError, docker_client
from image_spec import IMAGES, OWN_BASE_PREFIX, PLATFORMS, ImageSpec
from wheelhouse import (
    LOCK_FILE,
    Pin,
    WheelhouseError,
    download,
    pip_wheel,
    requirements_text,
    resolve,
    torch_index_url,
    torch_pin,
)

BUILD_DIR = REPO_ROOT / "build"
MANIFEST = BUILD_DIR / "images.json"
WHEELHOUSE = BUILD_DIR / "wheelhouse"
DEFAULT_BASE = "cosmicai-base:bookworm"


class ImageBudgetError(RuntimeError):
    """An image is larger than its size budget."""


class ImageBuildError(RuntimeError):
    """The engine failed to build an image; the message holds the build log tail."""


class BaseImageError(RuntimeError):
    """BASE_IMAGE / RUNTIME_IMAGE cannot serve this build (absent, wrong platform, mismatched pair)."""


# Engine machine names (docker info's Architecture) as docker platforms.
_ENGINE_PLATFORMS = {"x86_64": "linux/amd64", "amd64": "linux/amd64", "aarch64": "linux/arm64", "arm64": "linux/arm64"}


def platform_for(architecture: str) -> str:
    """The docker --platform of a Lambda architecture (x86_64 or arm64)."""
    try:
        return PLATFORMS[architecture]
    except KeyError:
        raise BaseImageError(f"architecture {architecture!r} is not one of {sorted(PLATFORMS)}") from None


def check_base_pair(base: str, runtime: str) -> None:
    """Refuse a builder base and a final-stage base with different Pythons.

    The builder's venv is copied into the runtime image and points at the builder's
    interpreter: /usr/bin/python3.11 on our Debian base, /usr/local/bin/python3.11 on
    python:3.11-slim. Mixing the two gives an image whose python does not start.
    """
    if base.startswith(OWN_BASE_PREFIX) != runtime.startswith(OWN_BASE_PREFIX):
        raise BaseImageError(
            f"BASE_IMAGE={base} and RUNTIME_IMAGE={runtime} have their Python in different places; "
            "use the same family for both (e.g. BASE_IMAGE=python:3.11-slim with RUNTIME_IMAGE unset or "
            "equal to it, or our cosmicai-base:bookworm with its -runtime copy)"
        )


def check_own_base_platform(base: str, platform: str, engine_platform: str) -> None:
    """Our debootstrap base exists only for the engine's own machine: refuse another platform."""
    if base.startswith(OWN_BASE_PREFIX) and platform != engine_platform:
        raise BaseImageError(
            f"{base} is built by debootstrap for this engine's platform ({engine_platform}), but the "
            f"functions need {platform}: build with BASE_IMAGE=python:3.11-slim (multi-platform), "
            "or set architecture in the tfvars to match this machine"
        )


def ensure_base(client: docker.DockerClient, ref: str, platform: str, log: Any) -> dict[str, Any]:
    """The local image `ref` for `platform`, pulled first when absent or of another platform.

    Pulled before the content digest is computed, so the tag names the base's id from the
    first build on (a pull during the build would change the tag on the next run).
    """
    want_arch = platform.split("/", 1)[1]
    try:
        image = client.images.get(ref)
        if image.attrs.get("Architecture") == want_arch:
            return dict(image.attrs)
    except ImageNotFound:
        image = None
    if ref.startswith(OWN_BASE_PREFIX):
        raise BaseImageError(
            f"{ref} is not in the engine: run `make images-base` (root and debootstrap), "
            "or build with BASE_IMAGE=python:3.11-slim"
        )
    log(f"pulling {ref} for {platform}" + (f" (the local one is {image.attrs.get('Architecture')})" if image else ""))
    try:
        pulled = client.images.pull(ref, platform=platform)
    except (APIError, docker.errors.DockerException) as exc:
        raise BaseImageError(
            f"base image {ref} for {platform} is not in the engine and cannot be pulled ({exc}); "
            f"`docker pull --platform {platform} {ref}` or choose another BASE_IMAGE"
        ) from exc
    if pulled.attrs.get("Architecture") != want_arch:
        raise BaseImageError(f"{ref} has no {platform} variant (got {pulled.attrs.get('Architecture')})")
    return dict(pulled.attrs)


def resolved_pins(spec: ImageSpec, architecture: str = "x86_64") -> list[Pin]:
    """Pins for `spec`, cached in build/images/ by the lock file's and the spec's content and the architecture."""
    key = hashlib.sha256(
        LOCK_FILE.read_bytes() + repr((spec.roots, sorted(spec.exclude), architecture, torch_pin())).encode()
    ).hexdigest()[:16]
    cache = BUILD_DIR / "images" / f"pins-{spec.name}-{architecture}-{key}.json"
    if cache.is_file():
        return [Pin(**p) for p in json.loads(cache.read_text())]
    pins = resolve(spec.roots, spec.exclude, architecture)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps([p.__dict__ for p in pins], indent=1))
    return pins


def base_identity(client: docker.DockerClient, base: str) -> str:
    """The local image id of `base` when present (so a rebuilt base changes tags), else its name."""
    try:
        return str(client.images.get(base).id)
    except ImageNotFound:
        return base


def runtime_image_for(base: str, runtime: str | None) -> str:
    """The final stage's base: as given, else base.sh's slim variant of our base, else the base itself."""
    if runtime:
        return runtime
    return f"{base}-runtime" if base.startswith("cosmicai-base:") else base


def build_one(
    client: docker.DockerClient,
    spec: ImageSpec,
    base: str,
    runtime: str,
    wheel_source: str,
    force: bool,
    log: Any,
    nocache: bool = False,
    architecture: str = "x86_64",
) -> dict[str, Any]:
    """Build (or reuse) one image for `architecture`; returns its manifest entry."""
    platform = platform_for(architecture)
    pins = resolved_pins(spec, architecture)
    wheels = download(pins, WHEELHOUSE, architecture) if wheel_source == "wheelhouse" else []
    if wheel_source == "wheelhouse":
        wheels.append(pip_wheel(WHEELHOUSE))
    buildargs = {"BASE_IMAGE": base, "RUNTIME_IMAGE": runtime, "WHEEL_SOURCE": wheel_source}
    if wheel_source == "index" and torch_index_url():
        buildargs["TORCH_INDEX_URL"] = torch_index_url()  # a mirror of the CPU index, when one is set
    ensure_base(client, base, platform, log)
    runtime_mb = ensure_base(client, runtime, platform, log)["Size"] / 1e6
    bases = f"{base_identity(client, base)} {base_identity(client, runtime)} {platform}"
    ctx, digest, facts = stage(
        spec, wheels, requirements_text(pins), bases, buildargs, BUILD_DIR / "images" / "context"
    )
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
        log(
            f"[{spec.name}] building {ref} for {platform} from {ctx.relative_to(REPO_ROOT)} "
            f"(base {base}, runtime {runtime}, wheels from {wheel_source})"
        )
        lines: list[str] = []
        try:
            for chunk in client.api.build(
                path=str(ctx),
                tag=ref,
                buildargs=buildargs,
                network_mode="host",
                platform=platform,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                nocache=nocache,
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
    if image.attrs.get("Architecture") != platform.split("/", 1)[1]:
        raise ImageBuildError(f"[{spec.name}] {ref} was built for {image.attrs.get('Architecture')}, not {platform}")
    client.api.tag(image.id, spec.repository, "latest")
    size_mb = image.attrs["Size"] / 1e6
    entry = {
        "tag": tag,
        "local_ref": ref,
        "size_mb": round(size_mb, 1),
        "budget_mb": spec.budget_for(runtime, runtime_mb),
        "architecture": architecture,
        "platform": platform,
        "runtime_image": runtime,
        "base_mb": round(runtime_mb, 1),
        "added_mb": round(size_mb - runtime_mb, 1),
        "added_budget_mb": spec.added_budget_mb,
        "image_id": image.id,
        "cached": cached,
        "build_s": round(time.monotonic() - started, 1),
        **facts,
    }
    how = "cached" if cached else f"built in {entry['build_s']} s"
    log(
        f"[{spec.name}] {ref} ({platform}): {size_mb:.1f} MB = {runtime} {runtime_mb:.1f} MB + ours "
        f"{entry['added_mb']} MB (budget {entry['budget_mb']:.0f} MB), {how}"
    )
    if facts.get("weights_placeholder") == "true":
        log(
            f"[{spec.name}] WARNING: baked PLACEHOLDER random-init weights ({facts['weights']}): "
            "the packaged demo weights are absent"
        )
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
            repositoryName=repo_uri.split("/", 1)[1], imageIds=[{"imageTag": tag}]
        )
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ImageNotFoundException":
            return False
        raise


def push(
    client: docker.DockerClient, manifest: dict[str, Any], registry: str, repositories: dict[str, str], log: Any
) -> None:
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
    p.add_argument("--images", default="inference,orchestration", help=f"comma-separated subset of {list(IMAGES)}")
    p.add_argument(
        "--architecture",
        choices=sorted(PLATFORMS),
        default="x86_64",
        help="the functions' Lambda architecture (Terraform's `architecture`); sets docker --platform",
    )
    p.add_argument("--base-image", default=DEFAULT_BASE, help="BASE_IMAGE build arg (default %(default)s)")
    p.add_argument(
        "--runtime-image",
        help="RUNTIME_IMAGE build arg, the final stage's base "
        f"(default: {DEFAULT_BASE}-runtime for the default base, else the base image)",
    )
    p.add_argument(
        "--wheel-source",
        choices=("wheelhouse", "index"),
        default="wheelhouse",
        help="wheelhouse: from build/wheelhouse (host pip, TORCH_INDEX_URL for torch); "
        "index: PyPI + the PyTorch CPU index inside the build",
    )
    p.add_argument(
        "--push",
        metavar="REGISTRY",
        help="ECR registry host to push to (e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com)",
    )
    p.add_argument(
        "--repository",
        action="append",
        default=[],
        metavar="NAME=URI",
        help="ECR repository URI for an image (default REGISTRY/cosmicai-NAME)",
    )
    p.add_argument(
        "--prefetch",
        action="store_true",
        help="only resolve and download the wheels (runs beside the base image build)",
    )
    p.add_argument("--force", action="store_true", help="rebuild even when an image with the tag exists")
    p.add_argument(
        "--prune", action="store_true", help="only remove our stale local tags and build layers older than an hour"
    )
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
        try:
            return _main(argv, log)
        except (
            BaseImageError,
            ImageBudgetError,
            ImageBuildError,
            WheelhouseError,
            EngineUnavailableError,
            ContextError,
        ) as exc:
            print(f"build.py: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1


def _main(argv: list[str] | None, log: Any) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.images.split(",") if n.strip()]
    unknown = sorted(set(names) - set(IMAGES))
    if unknown:
        print(f"build.py: unknown image(s) {unknown}; known: {list(IMAGES)}", file=sys.stderr)
        return 2
    repositories = dict(r.split("=", 1) for r in args.repository)
    runtime = runtime_image_for(args.base_image, args.runtime_image)
    check_base_pair(args.base_image, runtime)
    # Wheels first, one image after the other (they share the wheelhouse); builds may then overlap.
    if args.wheel_source == "wheelhouse":
        for name in names:
            wheels = download(resolved_pins(IMAGES[name], args.architecture), WHEELHOUSE, args.architecture)
            log(f"[{name}] {len(wheels)} {args.architecture} wheels in {WHEELHOUSE.relative_to(REPO_ROOT)}")
        pip_wheel(WHEELHOUSE)
    if args.prefetch:
        return 0
    client = docker_client()
    manifest: dict[str, Any] = json.loads(args.manifest.read_text()) if args.manifest.is_file() else {}
    if args.prune:
        prune_old(client, manifest, log)
        return 0
    platform = platform_for(args.architecture)
    check_own_base_platform(
        args.base_image, platform, _ENGINE_PLATFORMS.get(client.info().get("Architecture", ""), "?")
    )
    for ref in dict.fromkeys((args.base_image, runtime)):  # once, before the builds run side by side
        ensure_base(client, ref, platform, log)

    def one(name: str) -> dict[str, Any]:
        # A client per thread: the SDK's HTTP session is not meant to be shared.
        return build_one(
            docker_client(),
            IMAGES[name],
            args.base_image,
            runtime,
            args.wheel_source,
            args.force,
            log,
            nocache=args.no_cache,
            architecture=args.architecture,
        )

    # Both builds at once: much of a build waits on pip's unzip, strip and layer commits, not the CPU.
    with ThreadPoolExecutor(max_workers=1 if args.serial else len(names)) as pool:
        entries = dict(zip(names, pool.map(one, names), strict=True))
    over = []
    for name, entry in entries.items():
        manifest[name] = entry
        if entry["size_mb"] > entry["budget_mb"]:
            over.append(
                f"{name} {entry['size_mb']} MB > {entry['budget_mb']} MB "
                f"({entry['runtime_image']} {entry['base_mb']} MB + ours {entry['added_mb']} MB, "
                f"of which {entry['added_budget_mb']} MB are allowed)"
            )
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
