"""Per-object redshift catalogs: Parquet (default) or CSV with a fixed schema.

Columns: `object_id` int64, `z_pred` float32, `z_true` float32 (nullable: null
where no true redshift is known), `ra`, `dec` float64 degrees (nullable: null where
the shard carried no sky positions); with per-object uncertainty (`uncertainty: "tta8"`,
cosmicai.uncertainty) three more, float32: `z_err`, `z_p16`, `z_p84` (UNCERTAINTY_COLUMNS),
absent otherwise. Readers detect the format from the bytes.

Every catalog is built against the one `SCHEMA` (no pandas or other metadata; an
unlabelled shard's `z_true`, a position-less shard's `ra`/`dec`, are columns of nulls), so a run's
`<output>predictions/*.parquet` is one Parquet dataset that pyarrow.dataset, DuckDB or
pandas read in place in S3 without unifying schemas.

Provenance: a Parquet catalog may carry what produced it as schema key-value metadata, one key
per field, `cosmicai.<field>` (PROVENANCE_PREFIX; e.g. `cosmicai.weights_sha256`), values UTF-8
strings (JSON for non-strings). Workers write the fields of summary.json's `provenance`
(`cosmicai_version`, `weights_name`, `weights_sha256`, `model_card`, `backend`, `precision`,
`uncertainty`); `catalog_provenance` reads them back (a string value that is itself valid JSON, such
as "123", reads back decoded). Metadata does not change the schema's
fields, so the catalogs still read as one dataset. CSV has no metadata and carries none.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
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
        pa.field("ra", pa.float64(), nullable=True),
        pa.field("dec", pa.float64(), nullable=True),
    ]
)
# With uncertainty "tta8": the calibrated 1-sigma error and the 16th/84th percentiles (cosmicai.uncertainty).
UNCERTAINTY_COLUMNS = ("z_err", "z_p16", "z_p84")
UNCERTAINTY_SCHEMA = pa.schema([*SCHEMA, *(pa.field(c, pa.float32(), nullable=False) for c in UNCERTAINTY_COLUMNS)])
# Columns a catalog written before they existed may lack; read_catalog fills them with nulls.
OPTIONAL_COLUMNS = ("ra", "dec")
FORMATS = ("parquet", "csv")
PARQUET_MAGIC = b"PAR1"
PROVENANCE_PREFIX = "cosmicai."


class CatalogError(ValueError):
    """A catalog that cannot be written or read; the message names the source and problem."""


def catalog_table(
    object_ids: Any,
    z_pred: Any,
    z_true: Any = None,
    *,
    ra: Any = None,
    dec: Any = None,
    uncertainty: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Build the catalog table; NaN in `z_true`, `ra` or `dec` becomes null (unknown). `uncertainty`:
    the UNCERTAINTY_COLUMNS arrays (all three), appended after the five columns."""
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
    if (ra is None) != (dec is None):
        raise CatalogError("ra and dec come together: got only one of them")
    pos = [_position(ra, "ra", ids.shape[0]), _position(dec, "dec", ids.shape[0])]
    columns = [pa.array(ids.astype(np.int64, copy=False)), pa.array(pred), true, *pos]
    if uncertainty is None:
        return pa.table(columns, schema=SCHEMA)
    if set(uncertainty) != set(UNCERTAINTY_COLUMNS):
        raise CatalogError(f"uncertainty columns must be {list(UNCERTAINTY_COLUMNS)}, got {sorted(uncertainty)}")
    for name in UNCERTAINTY_COLUMNS:
        col = np.asarray(uncertainty[name], dtype=np.float32).reshape(-1)
        if col.shape[0] != ids.shape[0] or not np.isfinite(col).all():
            raise CatalogError(f"{name}: {col.shape[0]} values for {ids.shape[0]} object ids, all finite expected")
        columns.append(pa.array(col))
    return pa.table(columns, schema=UNCERTAINTY_SCHEMA)


def _position(values: Any, what: str, n: int) -> pa.Array:
    if values is None:
        return pa.nulls(n, type=pa.float64())
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    if a.shape[0] != n:
        raise CatalogError(f"{n} object ids but {a.shape[0]} {what} values")
    return pa.array(a, type=pa.float64(), mask=np.isnan(a))


def catalog_to_bytes(
    object_ids: Any,
    z_pred: Any,
    z_true: Any = None,
    fmt: str = "parquet",
    *,
    ra: Any = None,
    dec: Any = None,
    provenance: Mapping[str, Any] | None = None,
    uncertainty: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialise a catalog in memory (for an S3 PUT); `provenance` goes into Parquet's key-value metadata."""
    buf = io.BytesIO()
    table = catalog_table(object_ids, z_pred, z_true, ra=ra, dec=dec, uncertainty=uncertainty)
    if provenance and fmt == "parquet":
        table = table.replace_schema_metadata(provenance_metadata(provenance))
    _write_table(table, buf, fmt)
    return buf.getvalue()


def provenance_metadata(provenance: Mapping[str, Any]) -> dict[str, str]:
    """Parquet key-value metadata of a provenance mapping: `cosmicai.<key>` -> string (JSON if not one)."""
    return {
        PROVENANCE_PREFIX + str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        for k, v in provenance.items()
    }


def catalog_provenance(src: Path | str | bytes) -> dict[str, Any]:
    """The provenance a Parquet catalog carries ({} for none, or for CSV): keys without the prefix."""
    data = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else Path(src).read_bytes()
    if data[:4] != PARQUET_MAGIC:
        return {}
    try:
        meta = pq.read_schema(io.BytesIO(data)).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogError(f"not a readable Parquet catalog ({exc})") from exc
    out: dict[str, Any] = {}
    for k, v in meta.items():
        key, text = k.decode(), v.decode()
        if key.startswith(PROVENANCE_PREFIX):
            try:  # strings are stored as they are, anything else as JSON
                value = json.loads(text)
            except ValueError:
                value = text
            out[key.removeprefix(PROVENANCE_PREFIX)] = value
    return out


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
    *,
    ra: Any = None,
    dec: Any = None,
    uncertainty: Mapping[str, Any] | None = None,
) -> int:
    """Write a catalog to a path (atomically) or a binary file object; return the bytes written."""
    data = catalog_to_bytes(object_ids, z_pred, z_true, fmt, ra=ra, dec=dec, uncertainty=uncertainty)
    if hasattr(dst, "write"):
        dst.write(data)
        return len(data)
    path = Path(dst)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def read_catalog(src: Path | str | bytes) -> pa.Table:
    """Read a Parquet or CSV catalog (detected from the bytes) with the catalog schema (UNCERTAINTY_SCHEMA
    when it has uncertainty columns: all three, or CatalogError)."""
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
                column_types={f.name: f.type for f in UNCERTAINTY_SCHEMA}, strings_can_be_null=True
            )
            table = pacsv.read_csv(io.BytesIO(data), convert_options=opts)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise CatalogError(f"{name}: not a readable Parquet or CSV catalog ({exc})") from exc
    for col in OPTIONAL_COLUMNS:  # a catalog from before positions existed: unknown, not invalid
        if col not in table.column_names:
            table = table.append_column(pa.field(col, pa.float64()), pa.nulls(table.num_rows, pa.float64()))
    has_err = [c for c in UNCERTAINTY_COLUMNS if c in table.column_names]
    schema = UNCERTAINTY_SCHEMA if has_err else SCHEMA
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise CatalogError(f"{name}: missing column(s) {missing}; has {table.column_names}")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise CatalogError(f"{name}: columns do not fit the catalog schema ({exc})") from exc
