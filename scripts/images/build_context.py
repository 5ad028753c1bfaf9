"""Stages one image's Docker build context under build/images/<name>/ and computes the
content digest of every input (the image tag)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from docker_engine import REPO_ROOT
from image_spec import IMAGES_DIR, ImageSpec

HANDLERS_DIR = REPO_ROOT / "handlers"
PACKAGED_WEIGHTS = HANDLERS_DIR / "cosmicai" / "assets" / "astromae-demo.safetensors"
PLACEHOLDER_WEIGHTS = REPO_ROOT / "build" / "placeholder" / "astromae-PLACEHOLDER-random-init.safetensors"
# The validation set the image build qualifies the engine's precisions on (cosmicai.qualify).
VALIDATION_SET = HANDLERS_DIR / "cosmicai" / "assets" / "validation-n256-s21.safetensors"
_HASH_CACHE = REPO_ROOT / "build" / "wheelhouse" / ".sha256.json"
# images/ files every build context carries: the installer, the venv pruner, and the pruner of
# cosmicai modules the image's handlers never import.
BUILD_SCRIPTS = ("install.sh", "prune.sh", "runtime_modules.py")


class ContextError(RuntimeError):
    """A build input is missing or could not be prepared."""


def sha256_file(path: Path) -> str:
    """sha256 of a file, cached by (path, size, mtime) since wheels are large and immutable."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache: dict[str, str] = {}
    if _HASH_CACHE.is_file():
        try:
            cache = json.loads(_HASH_CACHE.read_text())
        except ValueError:  # a cache, never an input: recompute
            cache = {}
    if key not in cache:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        cache[key] = digest.hexdigest()
        _HASH_CACHE.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: parallel builds hash wheels at the same time.
        tmp = _HASH_CACHE.with_name(f"{_HASH_CACHE.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
        os.replace(tmp, _HASH_CACHE)
    return cache[key]


def source_files() -> list[Path]:
    """The cosmicai package sources that end up in the wheel (weights are hashed apart)."""
    files = [HANDLERS_DIR / "pyproject.toml"]
    for path in sorted((HANDLERS_DIR / "cosmicai").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".safetensors"}:
            files.append(path)
    return files


def weights_for_image() -> tuple[Path, bool]:
    """(weights file, is_placeholder): the packaged demo weights, else a labelled random init."""
    if PACKAGED_WEIGHTS.is_file():
        return PACKAGED_WEIGHTS, False
    if not PLACEHOLDER_WEIGHTS.is_file():
        PLACEHOLDER_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        # Seeded so the placeholder (and so the image tag) is the same on every build.
        code = (
            "import sys, torch; from cosmicai.model import AstroMAE; from cosmicai.weights import save_weights;"
            "torch.manual_seed(0);"
            "save_weights(AstroMAE(), sys.argv[1],"
            " metadata={'placeholder': 'random init, NOT trained: image tests only'})"
        )
        subprocess.run([sys.executable, "-c", code, str(PLACEHOLDER_WEIGHTS)], check=True)
    return PLACEHOLDER_WEIGHTS, True


def build_cosmicai_wheel(dest: Path) -> Path:
    """Build the cosmicai wheel from a clean copy of handlers/ (keeps build/ litter out of the tree)."""
    with tempfile.TemporaryDirectory(prefix="cosmicai-wheel-") as tmp:
        src = Path(tmp) / "handlers"
        src.mkdir()
        # setuptools refuses a readme outside the project folder (pyproject says
        # ../README.md): the staged copy carries its own.
        pyproject = (HANDLERS_DIR / "pyproject.toml").read_text()
        (src / "pyproject.toml").write_text(re.sub(r'(?m)^readme\s*=\s*".*"', 'readme = "README.md"', pyproject))
        shutil.copy2(REPO_ROOT / "README.md", src / "README.md")
        shutil.copytree(
            HANDLERS_DIR / "cosmicai",
            src / "cosmicai",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.safetensors"),
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(dest),
                str(src),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ContextError(f"building the cosmicai wheel failed:\n{proc.stderr[-3000:]}")
    wheels = sorted(dest.glob("cosmicai-*.whl"))
    if len(wheels) != 1:
        raise ContextError(f"expected one cosmicai wheel in {dest}, found {[w.name for w in wheels]}")
    return wheels[0]


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def stage(
    spec: ImageSpec, wheels: list[Path], requirements: str, base_id: str, buildargs: dict[str, str], root: Path
) -> tuple[Path, str, dict[str, str]]:
    """Write the context for `spec` under root/<name>; returns (dir, digest hex, extra facts)."""
    ctx = root / spec.name
    if ctx.exists():
        shutil.rmtree(ctx)
    (ctx / "wheels").mkdir(parents=True)
    digest = hashlib.sha256()

    def feed(label: str, data: bytes | str) -> None:
        digest.update(label.encode() + b"\0" + (data.encode() if isinstance(data, str) else data) + b"\0")

    shutil.copy2(spec.dockerfile, ctx / "Dockerfile")
    for name in BUILD_SCRIPTS:
        shutil.copy2(IMAGES_DIR / name, ctx / name)
    for name in ("Dockerfile", *BUILD_SCRIPTS):
        feed(name, (ctx / name).read_bytes())
    (ctx / "requirements.txt").write_text(requirements)
    feed("requirements.txt", requirements)
    for wheel in sorted(wheels):
        _link_or_copy(wheel, ctx / "wheels" / wheel.name)
        feed(f"wheel:{wheel.name}", sha256_file(wheel))
    for path in source_files():
        feed(f"src:{path.relative_to(HANDLERS_DIR)}", path.read_bytes())
    (ctx / "app").mkdir()
    build_cosmicai_wheel(ctx / "app")  # its own folder: the wheels layer stays cached
    feed("base", base_id)
    feed("buildargs", json.dumps(buildargs, sort_keys=True))
    facts: dict[str, str] = {}
    if spec.bake_weights:
        weights, placeholder = weights_for_image()
        (ctx / "weights").mkdir()
        _link_or_copy(weights, ctx / "weights" / "astromae.safetensors")
        feed("weights", sha256_file(weights))
        if not VALIDATION_SET.is_file():
            raise ContextError(f"the validation set {VALIDATION_SET} is missing (cosmicai.qualify needs it)")
        _link_or_copy(VALIDATION_SET, ctx / "weights" / "validation.safetensors")
        feed("validation", sha256_file(VALIDATION_SET))
        facts["weights"] = str(weights.relative_to(REPO_ROOT))
        facts["weights_placeholder"] = str(placeholder).lower()
    return ctx, digest.hexdigest(), facts
