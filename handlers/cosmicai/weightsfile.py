"""Where the weights are, and what they are, without importing torch.

`cosmicai.weights` (torch) re-exports these names; the OpenVINO worker and the
qualification use them directly so that its start-up never loads torch.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

WEIGHTS_ENV = "COSMICAI_WEIGHTS"
PACKAGED_WEIGHTS = "astromae-demo.safetensors"
WEIGHTS_FORMAT = "cosmicai.weights"


class WeightsError(ValueError):
    """Base of the weights errors."""


class WeightsNotFoundError(WeightsError):
    """No weights file where one was expected."""


def default_weights_path(packaged: str | None = None) -> Path:
    """$COSMICAI_WEIGHTS if set, else the packaged demo weights (file name `packaged`); raises if absent."""
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        path = Path(env)
        if not path.is_file():
            raise WeightsNotFoundError(f"{WEIGHTS_ENV}={env} but no such file; point it at a .safetensors weights file")
        return path
    path = Path(str(resources.files("cosmicai") / "assets" / (packaged or PACKAGED_WEIGHTS)))
    if not path.is_file():
        raise WeightsNotFoundError(
            f"no weights given and the packaged demo weights {path} are missing. Either set "
            f"{WEIGHTS_ENV}=/path/to/weights.safetensors, pass --weights, convert the published "
            "checkpoint with `cosmicai convert-checkpoint SRC DST --trust-pickle`, or build the "
            "demo weights (docs/data.md)"
        )
    return path


def resolve_weights_path(path: Path | str | None) -> Path:
    """`path` if given (it must exist), else `default_weights_path()`."""
    if path is None:
        return default_weights_path()
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: no such weights file")
    return path


_DIGESTS: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: Path | str) -> str:
    """sha256 of a weights file (cached per path, size and mtime within this process)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as fh:
            _DIGESTS[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _DIGESTS[key]


def sidecar(weights: Path | str, suffix: str) -> Path:
    """A file or folder recorded next to the weights: `astromae.safetensors` -> `astromae<suffix>`."""
    weights = Path(weights)
    return weights.with_name(weights.name.removesuffix(".safetensors") + suffix)


__all__ = [
    "PACKAGED_WEIGHTS",
    "WEIGHTS_ENV",
    "WEIGHTS_FORMAT",
    "WeightsError",
    "WeightsNotFoundError",
    "default_weights_path",
    "resolve_weights_path",
    "sidecar",
    "weights_sha256",
]
