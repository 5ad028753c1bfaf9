"""Host-side wheelhouse: resolve an image's requirements against requirements/lock.txt
and download the cp311 manylinux wheels for the image's architecture into build/wheelhouse.

torch is always the CPU build: its pin carries the `+cpu` local version, which only the
PyTorch CPU index (or a local copy of its wheels, e.g. pip's find-links) offers, so a host
pip configured for PyPI alone can never pick the CUDA build (2 GB of nvidia-* wheels).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from docker_engine import REPO_ROOT

LOCK_FILE = REPO_ROOT / "requirements" / "lock.txt"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The local version label of the PyTorch CPU builds (the CUDA builds on PyPI have none).
TORCH_CPU_LOCAL = "cpu"
# manylinux machine names by Lambda architecture (Terraform's `architecture`).
WHEEL_MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}


def pip_target(architecture: str) -> list[str]:
    """pip options that select wheels for the image, whatever the host is.

    The images run Debian bookworm or newer (glibc >= 2.36) with CPython 3.11 on the
    functions' architecture: an Apple-silicon laptop building x86_64 images needs x86_64
    wheels, not its own.
    """
    machine = WHEEL_MACHINES.get(architecture)
    if machine is None:
        raise WheelhouseError(f"architecture {architecture!r} is not one of {sorted(WHEEL_MACHINES)}")
    args = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for minor in range(36, 4, -1):
        args += ["--platform", f"manylinux_2_{minor}_{machine}"]
    # The legacy aliases of manylinux_2_17/2_12/2_5 (older wheels still use them).
    args += ["--platform", f"manylinux2014_{machine}"]
    if machine == "x86_64":
        args += ["--platform", "manylinux2010_x86_64", "--platform", "manylinux1_x86_64"]
    return args + ["--platform", "any"]


def torch_index_url() -> str:
    """The PyTorch CPU index (TORCH_INDEX_URL overrides it; empty = none, offline)."""
    return os.environ.get("TORCH_INDEX_URL", TORCH_CPU_INDEX)


def index_reachable(url: str, timeout_s: float = 5.0) -> bool:
    """Whether a package index answers (one quick request).

    pip retries an unreachable index five times per package (minutes offline), so an
    index that does not answer is left out and the +cpu pin still guards the choice.
    """
    if not url:
        return False
    if url.startswith("file:"):
        return Path(urlparse(url).path).is_dir()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/torch/", timeout=timeout_s) as resp:
            return bool(resp.status < 400)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def torch_pin(lock: Path = LOCK_FILE) -> str | None:
    """`torch==<lock version>+cpu`, the only torch an image may get; None if the lock has no torch."""
    m = re.search(r"(?mi)^torch==([0-9][^\s+#;]*)", lock.read_text())
    return f"torch=={m.group(1)}+{TORCH_CPU_LOCAL}" if m else None


def torch_source_args(index_url: str | None = None) -> list[str]:
    """pip options that add the PyTorch CPU index when it answers."""
    url = torch_index_url() if index_url is None else index_url
    return ["--extra-index-url", url] if index_reachable(url) else []


class WheelhouseError(RuntimeError):
    """Resolving or downloading wheels failed; the message carries pip's output."""


@dataclass(frozen=True)
class Pin:
    """One resolved distribution: normalised name, version, wheel file name."""

    name: str
    version: str
    filename: str


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise WheelhouseError(f"`{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def _torch_constraint(folder: str, lock: Path) -> list[str]:
    """`-c <file>` pinning torch to its CPU build (nothing when the lock has no torch)."""
    pin = torch_pin(lock)
    if pin is None:
        return []
    path = Path(folder) / "torch-cpu.txt"
    path.write_text(pin + "\n")
    return ["-c", str(path)]


def _no_cpu_torch_hint(exc: WheelhouseError, index_args: list[str]) -> WheelhouseError:
    """pip's failure with the fix when it is the CPU torch that could not be found."""
    if "torch" not in str(exc) or index_args:
        return exc
    return WheelhouseError(
        f"{exc}\nNo source offers the CPU build of torch ({torch_pin()}): the PyTorch CPU index "
        f"{torch_index_url() or '(TORCH_INDEX_URL is empty)'} did not answer. Give pip a way to it "
        "(network, or TORCH_INDEX_URL=<a mirror of it>), or put the wheel in a pip find-links folder."
    )


def resolve(
    roots: tuple[str, ...], exclude: frozenset[str], architecture: str = "x86_64", lock: Path = LOCK_FILE
) -> list[Pin]:
    """The closure of `roots` pinned by `lock` (cp311 manylinux wheels for `architecture`), minus `exclude`."""
    index_args = torch_source_args() if "torch" in roots else []
    # pip accepts --platform/--abi only with --target; --dry-run writes nothing there.
    with tempfile.TemporaryDirectory(prefix="cosmicai-resolve-") as target:
        try:
            proc = _pip(
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--only-binary=:all:",
                *pip_target(architecture),
                *index_args,
                "--target",
                target,
                "--report",
                "-",
                "-c",
                str(lock),
                *_torch_constraint(target, lock),
                *roots,
            )
        except WheelhouseError as exc:
            raise _no_cpu_torch_hint(exc, index_args) from exc
    report = json.loads(proc.stdout)
    pins = []
    for item in report["install"]:
        meta = item["metadata"]
        name = normalise(meta["name"])
        if name in exclude:
            continue
        filename = unquote(Path(urlparse(item["download_info"]["url"]).path).name)
        pins.append(Pin(name, meta["version"], filename))
    missing = {normalise(r) for r in roots} - {p.name for p in pins}
    if missing:
        raise WheelhouseError(f"resolution of {roots} lacks {sorted(missing)}")
    check_cpu_torch(pins)
    return sorted(pins, key=lambda p: p.name)


def check_cpu_torch(pins: list[Pin]) -> None:
    """Refuse a torch pin that is not the CPU build (a cached resolution from before the pin)."""
    for pin in pins:
        if pin.name == "torch" and not pin.version.endswith(f"+{TORCH_CPU_LOCAL}"):
            raise WheelhouseError(
                f"torch {pin.version} ({pin.filename}) is not the CPU build (+{TORCH_CPU_LOCAL}); "
                "delete build/images/pins-*.json and build again"
            )


def requirements_text(pins: list[Pin]) -> str:
    """A requirements.txt with one exact pin a line.

    Local versions stay: `torch==2.13.0+cpu` matches only the CPU build, so a build that
    installs from the indexes (WHEEL_SOURCE=index) cannot take PyPI's CUDA torch either.
    """
    return "".join(f"{p.name}=={p.version}\n" for p in pins)


def download(pins: list[Pin], dest: Path, architecture: str = "x86_64") -> list[Path]:
    """Ensure every pinned wheel is in `dest`; returns their paths (already present: no download)."""
    check_cpu_torch(pins)
    dest.mkdir(parents=True, exist_ok=True)
    absent = [p for p in pins if not (dest / p.filename).is_file()]
    if absent:
        index_args = torch_source_args() if any(p.name == "torch" for p in absent) else []
        reqs = dest / ".request.txt"
        reqs.write_text("".join(f"{p.name}=={p.version}\n" for p in absent))
        try:
            _pip(
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                *pip_target(architecture),
                *index_args,
                "-d",
                str(dest),
                "-r",
                str(reqs),
            )
        except WheelhouseError as exc:
            raise _no_cpu_torch_hint(exc, index_args) from exc
        reqs.unlink()
    paths = [dest / p.filename for p in pins]
    lost = [p.name for p in paths if not p.is_file()]
    if lost:
        raise WheelhouseError(f"pip download did not produce {lost} in {dest}")
    return paths


def pip_wheel(dest: Path) -> Path:
    """A pip wheel for bases without pip (Debian's python3 has no ensurepip)."""
    import pip

    name = f"pip-{pip.__version__}-py3-none-any.whl"
    if not (dest / name).is_file():
        _pip("download", "--quiet", "--no-deps", "-d", str(dest), f"pip=={pip.__version__}")
    return dest / name
