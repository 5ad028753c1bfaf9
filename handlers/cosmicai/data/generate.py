"""`make-dataset`: generate synthetic SDSS-like galaxies into shards plus a Parquet catalog.

Objects are drawn in fixed blocks of BLOCK objects, each with its own generator seeded
by (seed, block index), so the output is identical whatever the shard size.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cosmicai.data.population import draw_population
from cosmicai.data.render import asinh_mag, mag_to_nmgy, measured_flux, render
from cosmicai.data.sed import BANDS, TEMPLATES, k_grid

if TYPE_CHECKING:  # annotations only: make_dataset imports the shard writer inside, as it does pyarrow
    from cosmicai.shards import Shard

BLOCK = 500
CATALOG_NAME = "catalog.parquet"
DATASET_INFO = "dataset.json"  # generator settings, read by `cosmicai train` for the model card


class DatasetArgumentError(ValueError):
    """make-dataset was given an impossible count, size or shard size."""


@dataclass
class Block:
    """One generated block: shard arrays plus catalog columns."""

    object_ids: np.ndarray
    images: np.ndarray  # (B, 5, size, size) float32, nanomaggies
    magnitudes: np.ndarray  # (B, 5) float32 asinh magnitudes (measured)
    redshift: np.ndarray
    columns: dict[str, np.ndarray]


def generate_block(seed: int, index: int, count: int, size: int = 64) -> Block:
    """Generate objects index*BLOCK .. index*BLOCK+count-1 (count <= BLOCK) for this seed."""
    rng = np.random.default_rng([seed, index])
    # Draw the full block always, so a truncated last block matches the longer run's prefix.
    pop = draw_population(rng, BLOCK, k_grid())
    flux = mag_to_nmgy(pop.true_mags)
    meas = measured_flux(rng, flux, pop.r_e_arcsec[:, None])
    sl = slice(0, count)
    images = render(
        rng, size, flux[sl], pop.r_e_arcsec[sl], pop.sersic_n[sl], pop.axis_ratio[sl], pop.position_angle[sl]
    )
    mags = asinh_mag(meas[sl]).astype(np.float32)
    ids = np.arange(index * BLOCK, index * BLOCK + count, dtype=np.int64)
    names = np.array(TEMPLATES)[np.rint(pop.template_type[sl]).astype(int)]
    cols: dict[str, np.ndarray] = {
        "object_id": ids,
        "redshift": pop.redshift[sl].astype(np.float32),
        "template": names,
        "template_type": pop.template_type[sl].astype(np.float32),
        "is_lrg": pop.is_lrg[sl],
        "abs_mag_r": pop.abs_mag_r[sl].astype(np.float32),
        "r_e_kpc": pop.r_e_kpc[sl].astype(np.float32),
        "r_e_arcsec": pop.r_e_arcsec[sl].astype(np.float32),
        "sersic_n": pop.sersic_n[sl].astype(np.float32),
        "axis_ratio": pop.axis_ratio[sl].astype(np.float32),
        "position_angle": pop.position_angle[sl].astype(np.float32),
    }
    for k, b in enumerate(BANDS):
        cols[f"mag_{b}"] = mags[:, k]
        cols[f"true_mag_{b}"] = pop.true_mags[sl, k].astype(np.float32)
    return Block(ids, images, mags, pop.redshift[sl].astype(np.float32), cols)


def iter_objects(n: int, seed: int, size: int = 64) -> Iterator[Block]:
    """Yield blocks covering object ids 0..n-1."""
    for index in range((n + BLOCK - 1) // BLOCK):
        yield generate_block(seed, index, min(BLOCK, n - index * BLOCK), size)


def make_dataset(
    n: int,
    seed: int,
    out: Path | str,
    size: int = 64,
    shard_size: int = 5000,
    progress: bool = True,
    raw: bool = False,
) -> dict[str, Any]:
    """Write shards and catalog.parquet into out; return a summary.

    Shards are `part-NNNNN.safetensors` (centre-cropped to 32x32, about 20 KB per
    object) or, with raw=True, `raw-NNNNN.npz` holding the full `size` cutouts.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from rich.progress import Progress

    from cosmicai.shards import Shard, write_shard

    if n <= 0:
        raise DatasetArgumentError(f"make-dataset: --n must be positive, got {n}")
    if size < 32 or size % 2:
        raise DatasetArgumentError(f"make-dataset: --size must be an even number >= 32, got {size}")
    if shard_size <= 0:
        raise DatasetArgumentError(f"make-dataset: --shard-size must be positive, got {shard_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pending: list[Block] = []
    tables, shards, total_bytes = [], [], 0

    def flush(blocks: list[Block], part: int) -> int:
        shard = Shard(
            np.concatenate([b.object_ids for b in blocks]),
            np.concatenate([b.images for b in blocks]),
            np.concatenate([b.magnitudes for b in blocks]),
            np.concatenate([b.redshift for b in blocks]),
        )
        if raw:
            path = out / f"raw-{part:05d}.npz"
            shards.append(path.name)
            return _write_raw(shard, path)
        path = out / f"part-{part:05d}.safetensors"
        shards.append(path.name)
        return write_shard(shard, path)

    from cosmicai.data.sed import k_grid

    k_grid()  # build the template grid (about 1 s) before the bar starts
    with Progress(disable=not progress, transient=False) as bar:
        task = bar.add_task("make-dataset", total=n)
        buffered = 0
        for block in iter_objects(n, seed, size):
            tables.append(pa.table(block.columns))
            while block.object_ids.size:
                take = min(shard_size - buffered, block.object_ids.size)
                pending.append(_slice(block, 0, take))
                buffered += take
                block = _slice(block, take, block.object_ids.size)
                if buffered == shard_size:
                    total_bytes += flush(pending, len(shards))
                    pending, buffered = [], 0
            bar.update(task, completed=sum(t.num_rows for t in tables))
        if pending:
            total_bytes += flush(pending, len(shards))
    catalog = pa.concat_tables(tables)
    shard_col = np.repeat(np.array(shards), [min(shard_size, n - i * shard_size) for i in range(len(shards))])
    catalog = catalog.append_column("shard", pa.array(shard_col))
    pq.write_table(catalog, out / CATALOG_NAME, compression="zstd")
    (out / DATASET_INFO).write_text(
        json.dumps({"generator": "cosmicai make-dataset", "n": n, "seed": seed, "size": size, "raw": raw}) + "\n"
    )
    return {
        "objects": n,
        "shards": len(shards),
        "bytes": total_bytes,
        "bytes_per_object": total_bytes / n,
        "out": str(out),
    }


def _write_raw(shard: Shard, path: Path) -> int:
    """Uncropped cutouts as npz (same array names as the shard format); atomic write."""
    tmp = path.with_name(path.name + ".tmp")
    if shard.redshift is None:  # never: every generated object has its true redshift
        raise ValueError("raw cutouts are written with their true redshifts")
    with open(tmp, "wb") as fh:
        np.savez(
            fh,
            object_id=shard.object_ids,
            images=shard.images,
            magnitudes=shard.magnitudes,
            redshift=shard.redshift,
        )
    tmp.replace(path)
    return path.stat().st_size


def _slice(block: Block, a: int, b: int) -> Block:
    return Block(
        block.object_ids[a:b],
        block.images[a:b],
        block.magnitudes[a:b],
        block.redshift[a:b],
        {k: v[a:b] for k, v in block.columns.items()},
    )
