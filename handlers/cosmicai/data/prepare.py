"""`prepare`: clean raw cutouts, crop 64->32, split 70/15/15 reproducibly, report every removal.

Rules run in order and an object is removed by the first one it fails:
`bad_magnitude` (non-finite, or outside MAG_RANGE: SDSS writes sentinels such as
-9999 and 99 for failed photometry), `bad_image` (non-finite pixels or an all-zero
band), `missing_redshift` (non-finite or negative), `duplicate_id` (an id seen in an
earlier row; the first is kept). Survivors outside [z_min, z_max] are flagged
`redshift_outlier` and kept out of the splits unless keep_outliers is set.

The split ranks objects by a seeded hash of their id, so it does not depend on the
order or sharding of the input, and takes exactly 70/15/15 of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.shards import CROP, Shard, centre_crop, detect_format, write_shard

MAG_RANGE = (5.0, 35.0)
SPLITS = (("train", 0.70), ("val", 0.15), ("test", 0.15))
RULES = ("bad_magnitude", "bad_image", "missing_redshift", "duplicate_id")
FLAG = "redshift_outlier"
REPORT_NAME = "report.json"
OBJECTS_NAME = "objects.parquet"


class PrepareError(ValueError):
    """Input that prepare cannot use at all (named file and reason)."""


@dataclass
class RawBatch:
    """Unvalidated arrays of one input file, images already cropped to 32x32."""

    source: str
    object_ids: np.ndarray
    images: np.ndarray
    magnitudes: np.ndarray
    redshift: np.ndarray


@dataclass
class PrepareReport:
    """Counts and examples per removal reason, and the split sizes."""

    inputs: list[str]
    objects_in: int = 0
    removed: dict[str, int] = field(default_factory=lambda: {r: 0 for r in RULES})
    flagged: int = 0
    flagged_kept: bool = False
    examples: dict[str, list[int]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "objects_in": self.objects_in,
            "removed": self.removed,
            "removed_total": sum(self.removed.values()),
            "flagged_redshift_outliers": self.flagged,
            "flagged_kept_in_splits": self.flagged_kept,
            "examples": self.examples,
            "splits": self.splits,
            "settings": self.settings,
            "rules": {
                "bad_magnitude": f"a magnitude is NaN/inf or outside {list(MAG_RANGE)} (SDSS sentinels)",
                "bad_image": "an image holds NaN/inf or a band that is all zero",
                "missing_redshift": "redshift is NaN/inf or negative",
                "duplicate_id": "object id already seen in an earlier row (first kept)",
                FLAG: "redshift outside [z_min, z_max]",
            },
        }


def read_raw(path: Path) -> RawBatch:
    """Read a shard-like file without validation (so bad rows can be counted, not fatal)."""
    from cosmicai import shards as sh

    data = path.read_bytes()
    kind = detect_format(data, str(path))
    if kind == "safetensors":
        arrays, _ = sh._read_safetensors(data, str(path))
    elif kind == "npz":
        arrays = sh._read_npz(data, str(path))
    else:
        arrays = sh._read_pt(data, str(path))
    missing = [k for k in ("object_id", "images", "magnitudes") if k not in arrays]
    if missing:
        raise PrepareError(f"{path}: missing array(s) {missing}")
    images = np.asarray(arrays["images"])
    if (
        images.ndim != 4
        or images.shape[1] != 5
        or images.shape[2] != images.shape[3]
        or images.shape[2] < CROP
        or (images.shape[2] - CROP) % 2
    ):
        raise PrepareError(f"{path}: images have shape {images.shape}; expected (N, 5, S, S) with S >= {CROP}, S even")
    n = images.shape[0]
    z = arrays.get("redshift")
    if z is None:
        raise PrepareError(f"{path}: no redshift array; prepare builds training splits and needs true redshifts")
    z = np.asarray(z, dtype=np.float64).reshape(n, -1)[:, 0]
    mags = np.asarray(arrays["magnitudes"], dtype=np.float64)
    ids = np.asarray(arrays["object_id"])
    if mags.shape != (n, 5) or ids.shape != (n,):
        raise PrepareError(f"{path}: magnitudes {mags.shape} / object_id {ids.shape} do not match {n} images")
    return RawBatch(
        str(path), ids.astype(np.int64), np.ascontiguousarray(centre_crop(images), dtype=np.float32), mags, z
    )


def classify(batch: RawBatch, seen: set[int]) -> np.ndarray:
    """Reason index per row (-1 = clean) by the first rule each row fails; updates `seen`."""
    reason = np.full(batch.object_ids.size, -1, dtype=np.int64)

    def mark(k: int, bad: np.ndarray) -> None:
        reason[(reason < 0) & bad] = k

    m = batch.magnitudes
    mark(
        0,
        ~np.isfinite(m).all(axis=1)
        | (np.nan_to_num(m, nan=0) < MAG_RANGE[0]).any(axis=1)
        | (np.nan_to_num(m, nan=0) > MAG_RANGE[1]).any(axis=1),
    )
    img = batch.images
    finite = np.isfinite(img).reshape(img.shape[0], -1).all(axis=1)
    zero_band = (np.nan_to_num(img) == 0).reshape(img.shape[0], 5, -1).all(axis=2).any(axis=1)
    mark(1, ~finite | zero_band)
    z = batch.redshift
    mark(2, ~np.isfinite(z) | (np.nan_to_num(z, nan=-1) < 0))
    dup = np.zeros(reason.size, dtype=bool)
    for i, oid in enumerate(batch.object_ids.tolist()):
        if reason[i] >= 0:
            continue  # removed rows do not claim their id
        if oid in seen:
            dup[i] = True
        else:
            seen.add(oid)
    mark(3, dup)
    return reason


def split_of(ids: np.ndarray, seed: int) -> np.ndarray:
    """Split index (0 train, 1 val, 2 test) per id: exact 70/15/15 by rank of a seeded id hash."""
    x = ids.astype(np.uint64) ^ np.uint64((seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
    # splitmix64 finaliser: a fixed, well-mixed hash of (id, seed)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    rank = np.empty(ids.size, dtype=np.int64)
    rank[np.argsort(x, kind="stable")] = np.arange(ids.size)
    n_train = int(round(SPLITS[0][1] * ids.size))
    n_val = int(round(SPLITS[1][1] * ids.size))
    return np.where(rank < n_train, 0, np.where(rank < n_train + n_val, 1, 2))


def prepare(
    sources: Sequence[str | Path],
    out: Path | str,
    *,
    seed: int = 0,
    z_min: float = 0.0,
    z_max: float = 1.0,
    keep_outliers: bool = False,
    shard_size: int = 5000,
) -> PrepareReport:
    """Clean, crop, split and write out/{train,val,test}/part-*.safetensors, objects.parquet, report.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cosmicai.data.partition import expand_sources

    files = expand_sources(sources)
    out = Path(out)
    report = PrepareReport(inputs=[str(f) for f in files], flagged_kept=keep_outliers)
    report.settings = {
        "seed": seed,
        "z_min": z_min,
        "z_max": z_max,
        "keep_outliers": keep_outliers,
        "mag_range": list(MAG_RANGE),
    }
    seen: set[int] = set()
    kept: list[RawBatch] = []
    rows: list[pa.Table] = []
    for f in files:
        b = read_raw(f)
        reason = classify(b, seen)
        report.objects_in += b.object_ids.size
        status = np.array([RULES[r] if r >= 0 else "" for r in reason], dtype=object)
        ok = reason < 0
        flag = ok & ((b.redshift < z_min) | (b.redshift > z_max))
        status[flag] = FLAG
        for k, rule in enumerate(RULES):
            hit = reason == k
            report.removed[rule] += int(hit.sum())
            if hit.any():
                report.examples.setdefault(rule, []).extend(b.object_ids[hit][:10].tolist())
        report.flagged += int(flag.sum())
        if flag.any():
            report.examples.setdefault(FLAG, []).extend(b.object_ids[flag][:10].tolist())
        use = ok & (~flag | keep_outliers)
        rows.append(
            pa.table(
                {
                    "object_id": b.object_ids,
                    "source": [b.source] * b.object_ids.size,
                    "row": np.arange(b.object_ids.size),
                    "status": status.astype(str),
                }
            )
        )
        kept.append(
            RawBatch(
                b.source,
                b.object_ids[use],
                b.images[use],
                b.magnitudes[use].astype(np.float32),
                b.redshift[use].astype(np.float32),
            )
        )
    report.examples = {k: v[:10] for k, v in report.examples.items()}
    ids = np.concatenate([k.object_ids for k in kept])
    if ids.size == 0:
        raise PrepareError(f"no object survived cleaning: {report.removed}, {report.flagged} flagged")
    which = split_of(ids, seed)
    images = np.concatenate([k.images for k in kept])
    mags = np.concatenate([k.magnitudes for k in kept])
    z = np.concatenate([k.redshift for k in kept])
    for s, (name, _) in enumerate(SPLITS):
        sel = np.nonzero(which == s)[0]
        report.splits[name] = int(sel.size)
        _write_split(out / name, Shard(ids[sel], images[sel], mags[sel], z[sel]), shard_size)
    table = pa.concat_tables(rows)
    split_col = np.full(table.num_rows, "", dtype=object)
    pos = {int(i): SPLITS[w][0] for i, w in zip(ids.tolist(), which.tolist(), strict=True)}
    status = table.column("status").to_pylist()
    for r, (oid, st) in enumerate(zip(table.column("object_id").to_pylist(), status, strict=True)):
        if st in ("", FLAG) and oid in pos and (st == "" or keep_outliers):
            split_col[r] = pos[oid]
    table = table.append_column("split", pa.array(split_col.astype(str)))
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / OBJECTS_NAME)
    (out / REPORT_NAME).write_text(json.dumps(report.as_dict(), indent=1) + "\n")
    return report


def _write_split(folder: Path, shard: Shard, shard_size: int) -> None:
    """Replace folder's part-* shards with this split's objects."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.safetensors"):
        old.unlink()
    for i, a in enumerate(range(0, shard.n, shard_size)):  # an empty split leaves an empty folder
        write_shard(shard.rows(slice(a, a + shard_size)), folder / f"part-{i:05d}.safetensors")
