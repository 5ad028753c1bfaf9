"""The reference's inference loop, reproduced as the baseline the engine is compared with.

The reference reads a pickled `.pt` TensorDataset partition with `torch.load(weights_only=False)`,
iterates a DataLoader, runs the unmodified model eagerly inside a torch profiler, and calls
`gc.collect()` after every batch (REFERENCE.md section 3). Here the same pickle is read with
`weights_only=True` and TensorDataset allow-listed: the unpickling work is the same, the risk is not.
"""

from __future__ import annotations

import gc
import io
import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from cosmicai.model import AstroMAE
from cosmicai.shards import Shard


def partition_bytes(shard: Shard) -> bytes:
    """The shard as the reference stores a partition: a pickled TensorDataset (images, magnitudes, redshift)."""
    z = shard.redshift if shard.redshift is not None else np.zeros(shard.n, np.float32)
    ds = TensorDataset(
        torch.from_numpy(shard.images), torch.from_numpy(shard.magnitudes.astype(np.float64)), torch.from_numpy(z)
    )
    buf = io.BytesIO()
    torch.save(ds, buf)
    return buf.getvalue()


def reference_style_predict(model: AstroMAE, pt_bytes: bytes, batch_size: int) -> np.ndarray:
    """Predictions of the reference-style loop over one pickled partition (our own bytes only)."""
    with torch.serialization.safe_globals([TensorDataset]):
        dataset = torch.load(io.BytesIO(pt_bytes), weights_only=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    model.eval()
    outs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the profiler warns when it has no CUDA; noise here
        with torch.no_grad():
            for images, magnitudes, _z in loader:
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
                    out = model(images, magnitudes.float())
                outs.append(out[:, 0].numpy().copy())
                gc.collect()
    return np.concatenate(outs) if outs else np.empty(0, np.float32)


__all__ = ["partition_bytes", "reference_style_predict"]
