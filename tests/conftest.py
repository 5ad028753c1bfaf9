"""Shared fixtures for the unit and integration suites.

`shard_factory(n, seed, with_redshift=True, size=32, id_start=0) -> Shard` builds a
small, valid, deterministic shard in memory; `make_shard(...)` writes one to a real
file under tmp_path (format "safetensors", "npz" or "pt") and returns its path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cosmicai.shards import Shard, write_shard


def build_shard(n: int = 8, seed: int = 0, with_redshift: bool = True, size: int = 32, id_start: int = 0) -> Shard:
    """A deterministic synthetic shard: SDSS-like magnitudes, redshifts in [0.01, 0.4]."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.01, 0.4, n).astype(np.float32)
    mags = (rng.normal(18.0, 1.0, (n, 5)) + 2.5 * z[:, None]).astype(np.float32)
    images = rng.normal(0.0, 0.05, (n, 5, size, size)).astype(np.float32)
    return Shard(
        object_ids=np.arange(id_start, id_start + n, dtype=np.int64),
        images=images,
        magnitudes=mags,
        redshift=z if with_redshift else None,
    )


def save_as(shard: Shard, path: Path, fmt: str) -> Path:
    """Write `shard` as safetensors (our format), npz, or a reference-style .pt TensorDataset."""
    if fmt == "safetensors":
        write_shard(shard, path)
    elif fmt == "npz":
        arrays = {"object_id": shard.object_ids, "images": shard.images, "magnitudes": shard.magnitudes}
        if shard.redshift is not None:
            arrays["redshift"] = shard.redshift
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
    elif fmt == "pt":
        import torch
        from torch.utils.data import TensorDataset

        # The reference stores magnitudes as float64 and has no object ids.
        tensors = [torch.from_numpy(shard.images), torch.from_numpy(shard.magnitudes.astype(np.float64))]
        if shard.redshift is not None:
            tensors.append(torch.from_numpy(shard.redshift))
        torch.save(TensorDataset(*tensors), path)
    else:
        raise ValueError(f"unknown shard format {fmt!r}")
    return path


@pytest.fixture
def shard_factory() -> Callable[..., Shard]:
    """Factory of in-memory synthetic shards (see `build_shard`)."""
    return build_shard


@pytest.fixture
def make_shard(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a real shard file under tmp_path; returns its path."""
    counter = iter(range(1_000_000))

    def _make(
        n: int = 8,
        seed: int = 0,
        with_redshift: bool = True,
        *,
        size: int = 32,
        id_start: int = 0,
        fmt: str = "safetensors",
        name: str | None = None,
        directory: Path | None = None,
    ) -> Path:
        ext = {"safetensors": ".safetensors", "npz": ".npz", "pt": ".pt"}[fmt]
        folder = directory or tmp_path / "shards"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (name or f"shard-{next(counter):05d}{ext}")
        return save_as(build_shard(n, seed, with_redshift, size, id_start), path, fmt)

    return _make


def demo_weights_missing() -> str:
    """Why the packaged demo weights cannot be found ("" when they can): end-to-end tests need them."""
    from cosmicai.weights import WeightsNotFoundError, default_weights_path

    try:
        default_weights_path()
    except WeightsNotFoundError as exc:
        return str(exc)
    return ""
