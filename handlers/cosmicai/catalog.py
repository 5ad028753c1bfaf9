"""Per-object redshift catalogs: Parquet (default) or CSV with a fixed schema.

Columns: `object_id` int64, `z_pred` float32, `z_true` float32 (nullable: null
where no true redshift is known). Readers detect the format from the bytes.

Every catalog is built against the one `SCHEMA` (no pandas or other metadata; an
unlabelled shard's `z_true` is a float32 column of nulls), so a run's
`<output>predictions/*.parquet` is one Parquet dataset that pyarrow.dataset, DuckDB or
pandas read in place in S3 without unifying schemas.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        pa.field("object_id", pa.int64(), nullable=False),
        pa.field("z_pred", pa.float32(), nullable=False),
        pa.field("z_true", pa.float32(), nullable=True),
    ]
)
FORMATS = ("parquet", "csv")
PARQUET_MAGIC = b"PAR1"


class CatalogError(ValueError):
    """A catalog that cannot be written or read; the message names the source and problem."""


def catalog_table(object_ids: Any, z_pred: Any, z_true: Any = None) -> pa.Table:
    """Build the catalog table; NaN in `z_true` becomes null (unknown)."""
    ids = np.asarray(object_ids)
    pred = np.asarray(z_pred, dtype=np.float32).reshape(-1)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise CatalogError(f"object_ids must be a 1-D integer array, got {ids.dtype} {ids.shape}")
    if pred.shape[0] != ids.shape[0]:
        raise CatalogError(f"{ids.shape[0]} object ids but {pred.shape[0]} predictions")
    if z_true is None:
        true = pa.nulls(ids.shape[0], type=pa.float32())
    else:
        t = np.asarray(z_true, dtype=np.float32).reshape(-1)
        if t.shape[0] != ids.shape[0]:
            raise CatalogError(f"{ids.shape[0]} object ids but {t.shape[0]} true redshifts")
        true = pa.array(t, type=pa.float32(), mask=np.isnan(t))
    return pa.table(
        [pa.array(ids.astype(np.int64, copy=False)), pa.array(pred), true], schema=SCHEMA
    )


def catalog_to_bytes(object_ids: Any, z_pred: Any, z_true: Any = None, fmt: str = "parquet") -> bytes:
    """Serialise a catalog in memory (for an S3 PUT)."""
    buf = io.BytesIO()
    _write_table(catalog_table(object_ids, z_pred, z_true), buf, fmt)
    return buf.getvalue()


def _write_table(table: pa.Table, sink: BinaryIO | str, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    elif fmt == "csv":
        pacsv.write_csv(table, sink)
    else:
        raise CatalogError(f"unknown catalog format {fmt!r}; use one of {FORMATS}")


def write_catalog(
    dst: Path | str | BinaryIO,
    object_ids: Any,
    z_pred: Any,
    z_true: Any = None,
    fmt: str = "parquet",
) -> int:
    """Write a catalog to a path (atomically) or a binary file object; return the bytes written."""
    data = catalog_to_bytes(object_ids, z_pred, z_true, fmt)
    if hasattr(dst, "write"):
        dst.write(data)  # type: ignore[union-attr]
        return len(data)
    path = Path(dst)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def read_catalog(src: Path | str | bytes) -> pa.Table:
    """Read a Parquet or CSV catalog (detected from the bytes) with the catalog schema."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data, name = bytes(src), "<bytes>"
    else:
        name = str(src)
        try:
            data = Path(src).read_bytes()
        except OSError as exc:
            raise CatalogError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise CatalogError(f"{name}: empty file")
    try:
        if data[:4] == PARQUET_MAGIC:
            table = pq.read_table(io.BytesIO(data))
        else:
            opts = pacsv.ConvertOptions(
                column_types={f.name: f.type for f in SCHEMA}, strings_can_be_null=True
            )
            table = pacsv.read_csv(io.BytesIO(data), convert_options=opts)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise CatalogError(f"{name}: not a readable Parquet or CSV catalog ({exc})") from exc
    missing = [f.name for f in SCHEMA if f.name not in table.column_names]
    if missing:
        raise CatalogError(f"{name}: missing column(s) {missing}; has {table.column_names}")
    try:
        return table.select(SCHEMA.names).cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CatalogError(f"{name}: columns do not fit the catalog schema ({exc})") from exc
