"""Host-side wheelhouse: resolve an image's requirements against requirements/lock.txt
and download the cp311 manylinux wheels into build/wheelhouse (torch from /opt/wheels
or the PyTorch CPU index, whatever pip is configured with)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from docker_engine import REPO_ROOT

LOCK_FILE = REPO_ROOT / "requirements" / "lock.txt"
# The images run Debian bookworm (glibc 2.36) on x86_64 with CPython 3.11, whatever
# the host is: ask pip for wheels that fit the image, not the host.
_TARGET = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
for _minor in range(36, 4, -1):
    _TARGET += ["--platform", f"manylinux_2_{_minor}_x86_64"]
_TARGET += ["--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64",
            "--platform", "manylinux1_x86_64", "--platform", "any"]


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


def resolve(roots: tuple[str, ...], exclude: frozenset[str], lock: Path = LOCK_FILE) -> list[Pin]:
    """The closure of `roots` pinned by `lock` (cp311 manylinux wheels), minus `exclude`."""
    # pip accepts --platform/--abi only with --target; --dry-run writes nothing there.
    with tempfile.TemporaryDirectory(prefix="cosmicai-resolve-") as target:
        proc = _pip(
            "install", "--dry-run", "--ignore-installed", "--quiet", "--only-binary=:all:",
            *_TARGET, "--target", target, "--report", "-", "-c", str(lock), *roots,
        )
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
    return sorted(pins, key=lambda p: p.name)


def requirements_text(pins: list[Pin]) -> str:
    """A requirements.txt with one exact pin a line (local versions like +cpu dropped)."""
    return "".join(f"{p.name}=={p.version.split('+')[0]}\n" for p in pins)


def download(pins: list[Pin], dest: Path) -> list[Path]:
    """Ensure every pinned wheel is in `dest`; returns their paths (already present: no download)."""
    dest.mkdir(parents=True, exist_ok=True)
    absent = [p for p in pins if not (dest / p.filename).is_file()]
    if absent:
        reqs = dest / ".request.txt"
        reqs.write_text("".join(f"{p.name}=={p.version}\n" for p in absent))
        _pip(
            "download", "--quiet", "--no-deps", "--only-binary=:all:",
            *_TARGET, "-d", str(dest), "-r", str(reqs),
        )
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
