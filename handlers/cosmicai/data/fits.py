"""FITS cutouts plus an object table -> shard objects, for `cosmicai partition --from-fits`.

Cutout layouts (every file is read with astropy; `.gz` works too):

- one file per object with five 2-D image HDUs (an empty primary HDU is skipped). Bands are
  taken from each HDU's EXTNAME, FILTER or BAND keyword (first one that names a band: `u`,
  `U`, `sdss_u`, `SDSS-U`, `u_band`, `u-band`, `u band`); when no HDU names a band, HDU order
  is u, g, r, i, z. Extra unlabelled HDUs (masks, weights) are ignored when the five bands are
  labelled;
- one file per object holding a (5, H, W) cube, planes u, g, r, i, z, in the primary or first
  image HDU;
- one file per band, `<object_id>_<band>.fits`, grouped by id.

Cutouts are square, at least 32x32; larger ones are centre-cropped to 32x32 (an odd margin
drops the extra row and column at the end). Integer pixels become float32.

The table (FITS binary table, CSV or Parquet, detected from the bytes) needs an id column
(`object_id`, `objid` or `id`: integers) and five magnitude columns (`mag_u`..`mag_z`,
`u_mag`..`z_mag` or `u`..`z`, or the names given as `mag_columns`); optional `redshift`
(or `z_spec`, `zspec`, `z_true`, `specz`; null, NaN or negative means unknown), optional
`ra` and `dec` in degrees (or `ra_deg`, `dec_deg`; both or neither), and optionally the
cutout file names: `file` (or `filename`, `path`) for one file per object, or `file_u`..
`file_z` for one file per band. Without file columns the naming rule `<object_id>.fits`
(else `<object_id>_<band>.fits`) finds them among the cutouts given. Column names are
matched case-insensitively.

Bad input never stops the partition and never loses an object: an object whose row or
cutout is bad (missing file or band, wrong shape, NaN pixels, non-numeric data, duplicate
id, bad magnitude or position) and a cutout no row names are listed in `rejected` with a
code and a message naming the file and HDU. Only a table that cannot be used at all
(unreadable, no id or magnitude columns) is fatal (`FitsTableError`).
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.shards import CROP, Shard, ShardError, centre_crop

BANDS = ("u", "g", "r", "i", "z")
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")
# Keywords that may name an HDU's band, in the order they are consulted.
BAND_KEYWORDS = ("EXTNAME", "FILTER", "BAND")
ID_COLUMNS = ("object_id", "objid", "id")
MAG_COLUMN_SETS = (
    tuple(f"mag_{b}" for b in BANDS),
    tuple(f"{b}_mag" for b in BANDS),
    BANDS,
)
REDSHIFT_COLUMNS = ("redshift", "z_spec", "zspec", "z_true", "specz")
POSITION_COLUMNS = (("ra", "dec"), ("ra_deg", "dec_deg"))
FILE_COLUMNS = ("file", "filename", "path")
BAND_FILE_COLUMNS = tuple(f"file_{b}" for b in BANDS)
# Objects per yielded shard; the partition writer re-cuts them to the target size.
CHUNK = 256
_BAND_RE = re.compile(r"^(?:sdss[\s_-]*)?([ugriz])(?:[\s_-]*band)?$")
_NAME_RE = re.compile(r"^(?P<id>-?\d+)(?:_(?P<band>[ugriz]))?(?:\.fits|\.fit|\.fts)(?:\.gz)?$", re.IGNORECASE)


# ---------------------------------------------------------------- errors


class FitsInputError(ShardError):
    """Bad FITS input; the message names the file and, where one is at fault, the HDU."""

    code = "fits_error"

    def __init__(self, file: str, problem: str, hdu: int | None = None) -> None:
        self.file = file
        self.hdu = hdu
        super().__init__(file if hdu is None else f"{file} [HDU {hdu}]", problem)


class FitsTableError(FitsInputError):
    """The object table cannot be used at all (fatal: nothing is partitioned)."""

    code = "bad_table"


class FitsMissingFileError(FitsInputError):
    """A table row's cutout file is not among the cutouts given."""

    code = "missing_file"


class FitsUnreadableError(FitsInputError):
    """Not a FITS file, or a truncated or corrupt one."""

    code = "fits_unreadable"


class FitsMissingBandError(FitsInputError):
    """Fewer than the five bands u, g, r, i, z could be found."""

    code = "missing_band"


class FitsBandError(FitsInputError):
    """Band labels that contradict each other or the file name."""

    code = "bad_band"


class FitsShapeError(FitsInputError):
    """A cutout that is not square, smaller than 32x32, or not (5, H, W) / (H, W)."""

    code = "bad_shape"


class FitsNonNumericError(FitsInputError):
    """An HDU holding a table or other non-image data where pixels were expected."""

    code = "non_numeric"


class FitsNonFiniteError(FitsInputError):
    """NaN or infinite pixels."""

    code = "non_finite"


class DuplicateIdError(FitsInputError):
    """Several table rows share an object id: none of them can be told apart, all are rejected."""

    code = "duplicate_id"


class BadRowError(FitsInputError):
    """A table row without a usable id, magnitude or position; `code` is set per instance."""

    def __init__(self, file: str, problem: str, code: str) -> None:
        self.code = code
        super().__init__(file, problem)


class UnlistedCutoutError(FitsInputError):
    """A cutout file that no table row names (its object would otherwise vanish silently)."""

    code = "no_table_row"


@dataclass(frozen=True)
class Rejected:
    """One object (or unclaimed file) left out of the shards, and why."""

    id: int | None
    file: str | None
    code: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "file": self.file, "code": self.code, "reason": self.reason}


# ---------------------------------------------------------------- the table


@dataclass
class ObjectTable:
    """The table's usable columns: ids int64, magnitudes (N, 5), the optional ones NaN where null."""

    source: str
    ids: np.ndarray
    id_null: np.ndarray
    magnitudes: np.ndarray
    redshift: np.ndarray | None
    ra: np.ndarray | None
    dec: np.ndarray | None
    files: list[str | None] | None  # one cutout file per object
    band_files: dict[str, list[str | None]] | None  # one cutout file per band

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class _Column:
    name: str
    values: np.ndarray  # under a null: "" for text, any value for numbers (see `null`)
    null: np.ndarray  # bool mask


def _kind(data: bytes) -> str:
    if data[:9] == b"SIMPLE  =" or data[:2] == b"\x1f\x8b":
        return "fits"
    if data[:4] == b"PAR1":
        return "parquet"
    return "csv"


def _read_columns(path: Path) -> list[_Column]:
    """Every column of the table file, format detected from its first bytes."""
    label = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise FitsTableError(label, f"cannot read the object table ({exc.strerror or exc})") from exc
    if not head:
        raise FitsTableError(label, "object table is empty (0 bytes)")
    kind = _kind(head)
    try:
        return _fits_columns(path) if kind == "fits" else _arrow_columns(path, kind)
    except FitsTableError:
        raise
    except Exception as exc:  # astropy and pyarrow raise many types for a corrupt file
        raise FitsTableError(label, f"not a readable {kind} table ({type(exc).__name__}: {exc})") from exc


def _fits_columns(path: Path) -> list[_Column]:
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "several tables, reading the first" is expected
        table = Table.read(path, format="fits", character_as_bytes=False)
    cols = []
    for name in table.colnames:
        col = table[name]
        if col.ndim != 1:
            continue  # vector columns cannot be ids, magnitudes or file names
        null = np.ma.getmaskarray(col)
        values = np.asarray(np.ma.getdata(col))
        cols.append(_Column(name, _fill(values, null), null))
    return cols


def _arrow_columns(path: Path, kind: str) -> list[_Column]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    else:
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(path)
    cols = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        null = np.asarray(pc.is_null(col, nan_is_null=True).to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_integer(col.type):  # with nulls, to_numpy would turn 64-bit ids into floats
            col = col.fill_null(0)
        values = np.asarray(col.to_numpy(zero_copy_only=False))
        cols.append(_Column(name, _fill(values, null), null))
    return cols


def _fill(values: np.ndarray, null: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "OSU":
        return np.array(["" if m else _text(v) for v, m in zip(values, null, strict=True)], dtype=object)
    return values


def _text(v: Any) -> str:
    return (v.decode() if isinstance(v, bytes) else str(v)).strip()


def _find(cols: dict[str, _Column], names: Sequence[str]) -> _Column | None:
    for name in names:
        if name.lower() in cols:
            return cols[name.lower()]
    return None


def _numeric(col: _Column, table: str, what: str) -> np.ndarray:
    if col.values.dtype.kind not in "iuf":
        raise FitsTableError(table, f"{what} column {col.name!r} is not numeric ({col.values.dtype})")
    out = col.values.astype(np.float64)
    out[col.null] = np.nan
    return out


def read_object_table(path: Path | str, mag_columns: Sequence[str] | None = None) -> ObjectTable:
    """Read and check the object table's columns (module docstring); FitsTableError if unusable."""
    path = Path(path)
    label = str(path)
    raw = _read_columns(path)
    cols: dict[str, _Column] = {}
    for c in raw:
        cols.setdefault(c.name.lower(), c)
    if not raw or len(raw[0].values) == 0:
        raise FitsTableError(label, "object table has no rows")
    id_col = _find(cols, ID_COLUMNS)
    if id_col is None:
        raise FitsTableError(label, f"no id column: need one of {list(ID_COLUMNS)}; has {[c.name for c in raw]}")
    if id_col.values.dtype.kind not in "iu":
        raise FitsTableError(
            label,
            f"id column {id_col.name!r} has dtype {id_col.values.dtype}: ids must be integers "
            "(floats cannot hold every 64-bit id exactly)",
        )
    mags = _magnitudes(cols, label, mag_columns, [c.name for c in raw])
    z_col = _find(cols, REDSHIFT_COLUMNS)
    redshift = None if z_col is None else _numeric(z_col, label, "redshift")
    ra, dec = _positions(cols, label)
    files, band_files = _file_columns(cols, label)
    return ObjectTable(
        source=label,
        ids=id_col.values.astype(np.int64),
        id_null=id_col.null,
        magnitudes=mags,
        redshift=redshift,
        ra=ra,
        dec=dec,
        files=files,
        band_files=band_files,
    )


def _magnitudes(cols: dict[str, _Column], label: str, given: Sequence[str] | None, names: list[str]) -> np.ndarray:
    sets = [tuple(given)] if given else list(MAG_COLUMN_SETS)
    if given and len(given) != len(BANDS):
        raise FitsTableError(label, f"--mag-columns needs {len(BANDS)} names (u,g,r,i,z), got {len(given)}")
    for names_set in sets:
        found = [_find(cols, [n]) for n in names_set]
        if all(c is not None for c in found):
            return np.stack([_numeric(c, label, "magnitude") for c in found if c is not None], axis=1)
    accepted = " or ".join(",".join(s) for s in sets)
    raise FitsTableError(label, f"no magnitude columns: need {accepted}; has {names}")


def _positions(cols: dict[str, _Column], label: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    for ra_name, dec_name in POSITION_COLUMNS:
        ra, dec = _find(cols, [ra_name]), _find(cols, [dec_name])
        if ra is not None and dec is not None:
            return _numeric(ra, label, "ra"), _numeric(dec, label, "dec")
        if (ra is None) != (dec is None):
            have = ra_name if ra is not None else dec_name
            raise FitsTableError(label, f"column {have!r} without its pair: sky positions need both ra and dec")
    return None, None


def _file_columns(
    cols: dict[str, _Column], label: str
) -> tuple[list[str | None] | None, dict[str, list[str | None]] | None]:
    per_object = _find(cols, FILE_COLUMNS)
    per_band = {b: _find(cols, [f"file_{b}"]) for b in BANDS}
    if per_object is not None:
        return _names(per_object, label), None
    present = [b for b, c in per_band.items() if c is not None]
    if present and len(present) != len(BANDS):
        missing = [f"file_{b}" for b in BANDS if b not in present]
        raise FitsTableError(label, f"per-band file columns lack {missing}")
    if present:
        return None, {b: _names(c, label) for b, c in per_band.items() if c is not None}
    return None, None


def _names(col: _Column, label: str) -> list[str | None]:
    if col.values.dtype != object:
        raise FitsTableError(label, f"file column {col.name!r} does not hold text")
    return [None if (m or not v) else str(v) for v, m in zip(col.values, col.null, strict=True)]


# ---------------------------------------------------------------- the cutouts given


def _is_fits_name(name: str) -> bool:
    return name.lower().endswith(FITS_SUFFIXES)


def index_cutouts(sources: Sequence[str | Path]) -> tuple[list[Path], dict[str, Path]]:
    """Folders (their FITS files, non-recursive) and files given -> (folders, {file name: path})."""
    folders: list[Path] = []
    index: dict[str, Path] = {}
    for src in map(Path, sources):
        if src.is_dir():
            folders.append(src)
            found = sorted(p for p in src.iterdir() if p.is_file() and _is_fits_name(p.name))
        elif src.is_file():
            found = [src]
        else:
            raise FitsTableError(str(src), "no such cutout file or folder")
        for p in found:
            if p.name in index and index[p.name] != p:
                raise FitsTableError(
                    str(p), f"two cutouts are named {p.name!r} ({index[p.name]} and {p}); give one of the folders"
                )
            index[p.name] = p
    if not index:
        raise FitsTableError(
            ", ".join(map(str, sources)), f"no FITS files ({'/'.join(FITS_SUFFIXES)}) among the cutouts given"
        )
    return folders, index


@dataclass
class ObjectFiles:
    """Where one object's pixels are: one file (five HDUs or a cube) or one file per band."""

    object_file: Path | None = None
    band_files: dict[str, Path] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # band -> the file name not found

    def check_complete(self, oid: int, row: int) -> None:
        """FitsMissingBandError naming the band files that were not found."""
        if self.missing:
            where = ", ".join(self.missing.values())
            raise FitsMissingBandError(
                where, f"id {oid} (table row {row}) lacks band(s) {list(self.missing)}: file(s) not found"
            )

    @property
    def paths(self) -> list[Path]:
        return [self.object_file] if self.object_file else list(self.band_files.values())

    @property
    def label(self) -> str:
        return str(self.object_file) if self.object_file else ",".join(str(p) for p in self.band_files.values())


def _resolve(name: str, folders: list[Path], index: dict[str, Path]) -> Path | None:
    path = Path(name)
    if path.is_absolute():
        return path if path.is_file() else None
    for folder in folders:
        if (folder / path).is_file():
            return folder / path
    return index.get(path.name)


def locate(table: ObjectTable, row: int, folders: list[Path], index: dict[str, Path]) -> ObjectFiles:
    """The cutout file(s) of one table row (per band: those found, and `missing`); FitsMissingFileError
    when there is none at all."""
    oid = int(table.ids[row])
    if table.files is not None:
        name = table.files[row]
        if name is None:
            raise FitsMissingFileError(table.source, f"row {row} (id {oid}) names no cutout file")
        found = _resolve(name, folders, index)
        if found is None:
            raise FitsMissingFileError(name, f"cutout of id {oid} (table row {row}) not found among the cutouts given")
        return ObjectFiles(object_file=found)
    if table.band_files is not None:
        names = {b: table.band_files[b][row] for b in BANDS}
    else:
        for suffix in FITS_SUFFIXES:  # the naming rule: <id>.fits, else <id>_<band>.fits
            if f"{oid}{suffix}" in index:
                return ObjectFiles(object_file=index[f"{oid}{suffix}"])
        names = {b: next((f"{oid}_{b}{s}" for s in FITS_SUFFIXES if f"{oid}_{b}{s}" in index), None) for b in BANDS}
        if all(v is None for v in names.values()):
            raise FitsMissingFileError(
                f"{oid}.fits", f"id {oid} (table row {row}): no {oid}.fits or {oid}_<band>.fits among the cutouts given"
            )
    files = {b: _resolve(n, folders, index) if n else None for b, n in names.items()}
    missing = {b: str(names[b] or f"{oid}_{b}.fits") for b in BANDS if files[b] is None}
    return ObjectFiles(band_files={b: p for b, p in files.items() if p is not None}, missing=missing)


# ---------------------------------------------------------------- the pixels


def band_of(header: Any) -> str | None:
    """The band an HDU's EXTNAME/FILTER/BAND keyword names, or None."""
    for key in BAND_KEYWORDS:
        value = header.get(key)
        if isinstance(value, str):
            m = _BAND_RE.match(value.strip().lower())
            if m:
                return m.group(1)
    return None


def read_object_pixels(files: ObjectFiles) -> np.ndarray:
    """The object's (5, 32, 32) float32 cutout; a FitsInputError subclass names what is wrong."""
    if files.missing:
        raise FitsMissingBandError(", ".join(files.missing.values()), f"lacks band(s) {list(files.missing)}")
    if files.object_file is not None:
        planes = _object_file_planes(files.object_file)
    else:
        planes = [_band_file_plane(files.band_files[b], b) for b in BANDS]
    return _stack(planes)


@dataclass
class _Plane:
    file: str
    hdu: int
    data: np.ndarray


def _open(path: Path) -> Any:
    from astropy.io import fits

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # astropy warns before it raises on corrupt headers
            return fits.open(path, memmap=False, lazy_load_hdus=False)
    except FileNotFoundError as exc:
        raise FitsMissingFileError(str(path), "cutout file not found") from exc
    except Exception as exc:  # OSError, ValueError, TypeError ... all mean "not a usable FITS file"
        raise FitsUnreadableError(str(path), f"not a readable FITS file ({type(exc).__name__}: {exc})") from exc


def _image_hdus(path: Path, hdul: Any) -> list[tuple[int, Any, np.ndarray]]:
    """(index, hdu, data) of the HDUs holding image data; non-image data raises FitsNonNumericError."""
    from astropy.io import fits

    images, others = [], []
    for i, hdu in enumerate(hdul):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = hdu.data
        except Exception as exc:
            raise FitsUnreadableError(
                str(path), f"data cannot be read, truncated? ({type(exc).__name__}: {exc})", hdu=i
            ) from exc
        if data is None:
            continue
        if isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) and not isinstance(hdu, fits.GroupsHDU):
            images.append((i, hdu, data))
        else:
            others.append((i, hdu))
    if not images:
        if others:
            i, hdu = others[0]
            raise FitsNonNumericError(str(path), f"holds a {type(hdu).__name__}, not image data", hdu=i)
        raise FitsMissingBandError(str(path), "no HDU holds image data")
    for i, _hdu, data in images:
        if data.dtype.kind not in "iuf":
            raise FitsNonNumericError(str(path), f"image data of dtype {data.dtype} is not numeric", hdu=i)
    return images


def _object_file_planes(path: Path) -> list[_Plane]:
    hdul = _open(path)
    try:
        images = _image_hdus(path, hdul)
        first_i, _first, first_data = images[0]
        if first_data.ndim == 3:
            if first_data.shape[0] != len(BANDS):
                raise FitsShapeError(
                    str(path), f"cube has shape {first_data.shape}; expected (5, H, W), planes u,g,r,i,z", hdu=first_i
                )
            return [_Plane(str(path), first_i, np.asarray(first_data[k])) for k in range(len(BANDS))]
        return _labelled_planes(path, images)
    finally:
        hdul.close()


def _labelled_planes(path: Path, images: list[tuple[int, Any, np.ndarray]]) -> list[_Plane]:
    for i, _hdu, data in images:
        if data.ndim != 2:
            raise FitsShapeError(
                str(path), f"image has shape {data.shape}; expected (H, W) per band or one (5, H, W) cube", hdu=i
            )
    labels = [(i, band_of(hdu.header), data) for i, hdu, data in images]
    by_band: dict[str, list[int]] = {}
    for i, band, _data in labels:
        if band:
            by_band.setdefault(band, []).append(i)
    twice = {b: idx for b, idx in by_band.items() if len(idx) > 1}
    if twice:
        b, idx = next(iter(twice.items()))
        raise FitsBandError(str(path), f"HDUs {idx} all name band {b!r} (by {'/'.join(BAND_KEYWORDS)})", hdu=idx[1])
    if len(by_band) == len(BANDS):
        data_of = {i: d for i, _b, d in labels}
        return [_Plane(str(path), by_band[b][0], np.asarray(data_of[by_band[b][0]])) for b in BANDS]
    if not by_band and len(images) == len(BANDS):
        return [_Plane(str(path), i, np.asarray(d)) for i, _h, d in images]  # no labels: HDU order is u,g,r,i,z
    if by_band:
        missing = [b for b in BANDS if b not in by_band]
        raise FitsMissingBandError(
            str(path),
            f"HDUs name bands {sorted(by_band, key=BANDS.index)} by {'/'.join(BAND_KEYWORDS)}; missing {missing}",
        )
    raise FitsMissingBandError(
        str(path),
        f"{len(images)} image HDU(s) {[i for i, _h, _d in images]} and no band keywords; "
        "need 5 (u,g,r,i,z) or a (5, H, W) cube",
    )


def _band_file_plane(path: Path, band: str) -> _Plane:
    hdul = _open(path)
    try:
        i, hdu, data = _image_hdus(path, hdul)[0]
        said = band_of(hdu.header)
        if said is not None and said != band:
            raise FitsBandError(str(path), f"file is named for band {band!r} but its header says {said!r}", hdu=i)
        if data.ndim == 3 and data.shape[0] == 1:
            data = data[0]
        if data.ndim != 2:
            raise FitsShapeError(
                str(path), f"image has shape {data.shape}; a per-band file holds one (H, W) image", hdu=i
            )
        return _Plane(str(path), i, np.asarray(data))
    finally:
        hdul.close()


def _stack(planes: list[_Plane]) -> np.ndarray:
    shape = planes[0].data.shape
    for p in planes:
        h, w = p.data.shape
        if h != w:
            raise FitsShapeError(p.file, f"cutout is {h}x{w}; cutouts must be square", hdu=p.hdu)
        if h < CROP:
            raise FitsShapeError(p.file, f"cutout is {h}x{w}, smaller than {CROP}x{CROP}", hdu=p.hdu)
        if p.data.shape != shape:
            raise FitsShapeError(p.file, f"band is {h}x{w} but the first band is {shape[0]}x{shape[1]}", hdu=p.hdu)
        bad = ~np.isfinite(p.data) if p.data.dtype.kind == "f" else None
        if bad is not None and bad.any():
            y, x = (int(v[0]) for v in np.nonzero(bad))
            raise FitsNonFiniteError(p.file, f"{int(bad.sum())} NaN/inf pixel(s), first at (y={y}, x={x})", hdu=p.hdu)
    cube = np.stack([p.data.astype(np.float32) for p in planes])  # big-endian FITS -> native float32
    return np.ascontiguousarray(centre_crop(cube) if cube.shape[-1] != CROP else cube)


# ---------------------------------------------------------------- the partition source


MAG_RANGE = (5.0, 35.0)  # as `prepare`: SDSS writes sentinels such as -9999 and 99


@dataclass
class _Plan:
    table: ObjectTable
    rows: list[tuple[int, ObjectFiles]]  # usable rows, labelled first, in table order within each
    rejected: list[Rejected]
    input_bytes: int


class FitsSource:
    """Objects of FITS cutouts plus an object table, for `cosmicai.data.partition.write_partition`.

    Labelled objects (finite, non-negative redshift) come first, then unlabelled ones, each in
    table order, so a partially labelled table gives whole labelled and unlabelled shards.
    """

    split_on_labels = True

    def __init__(
        self,
        cutouts: Sequence[str | Path],
        table: str | Path,
        mag_columns: Sequence[str] | None = None,
        chunk: int = CHUNK,
    ) -> None:
        self.cutouts = [Path(c) for c in cutouts]
        self.table_path = Path(table)
        self.mag_columns = tuple(mag_columns) if mag_columns else None
        self.chunk = chunk
        self._plan: _Plan | None = None
        self._rejected: list[Rejected] = []

    def describe(self) -> list[str]:
        return [str(self.table_path), *map(str, self.cutouts)]

    def input_bytes(self) -> int:
        return self.plan().input_bytes

    def rejected(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self._rejected]

    def plan(self) -> _Plan:
        """Read the table and match rows to files (no pixels yet); table problems raise here."""
        if self._plan is None:
            self._plan = _make_plan(self.table_path, self.cutouts, self.mag_columns)
            self._rejected = list(self._plan.rejected)
        return self._plan

    def shards(self) -> Iterator[tuple[str, Shard]]:
        """Validated shards of up to `chunk` objects; bad cutouts go to `rejected` as they are met."""
        plan = self.plan()
        t = plan.table
        batch: list[tuple[int, np.ndarray]] = []
        labelled = False  # whether the objects in `batch` carry a redshift
        for row, files in plan.rows:
            is_labelled = t.redshift is not None and _label_ok(t.redshift[row])
            if batch and (len(batch) >= self.chunk or is_labelled != labelled):
                yield self._shard(batch, labelled)
                batch = []
            try:
                pixels = read_object_pixels(files)
            except FitsInputError as exc:
                self._rejected.append(Rejected(int(t.ids[row]), files.label, exc.code, str(exc)))
                continue
            if not batch:
                labelled = is_labelled
            batch.append((row, pixels))
        if batch:
            yield self._shard(batch, labelled)

    def _shard(self, batch: list[tuple[int, np.ndarray]], labelled: bool) -> tuple[str, Shard]:
        t = self.plan().table
        rows = np.array([r for r, _ in batch])
        shard = Shard(
            object_ids=t.ids[rows],
            images=np.stack([img for _, img in batch]),
            magnitudes=t.magnitudes[rows].astype(np.float32),
            redshift=t.redshift[rows].astype(np.float32) if labelled and t.redshift is not None else None,
            ra=None if t.ra is None else t.ra[rows],
            dec=None if t.dec is None else t.dec[rows],
        )
        return f"{t.source} rows {rows[0]}..{rows[-1]}", shard


def _label_ok(z: float) -> bool:
    return bool(np.isfinite(z) and z >= 0)


def _make_plan(table_path: Path, cutouts: Sequence[Path], mag_columns: Sequence[str] | None) -> _Plan:
    table = read_object_table(table_path, mag_columns)
    folders, index = index_cutouts(cutouts)
    # The table may sit among the cutouts (make-dataset --fits writes it beside them).
    index = {k: p for k, p in index.items() if p.resolve() != table_path.resolve()}
    folders = [*folders, table_path.parent]  # relative file names may be relative to the table
    rejected: list[Rejected] = []
    claimed: set[Path] = set()
    dup = _duplicate_rows(table)
    good: list[tuple[int, ObjectFiles]] = []
    for row in range(table.n):
        oid = None if table.id_null[row] else int(table.ids[row])
        try:
            files = locate(table, row, folders, index) if oid is not None else None
        except FitsInputError as exc:
            rejected.append(Rejected(oid, exc.file, exc.code, str(exc)))
            continue
        if files is not None:
            claimed.update(p.resolve() for p in files.paths)  # a rejected row still owns its files
            try:
                files.check_complete(int(table.ids[row]), row)
            except FitsInputError as exc:
                rejected.append(Rejected(oid, exc.file, exc.code, str(exc)))
                continue
        problem = _row_problem(table, row, dup)
        if problem is not None:
            rejected.append(Rejected(oid, files.label if files else None, problem.code, str(problem)))
        elif files is not None:
            good.append((row, files))
    for path in sorted(p for p in index.values() if p.resolve() not in claimed):
        m = _NAME_RE.match(path.name)
        err = UnlistedCutoutError(str(path), f"no row of {table.source} names this cutout")
        rejected.append(Rejected(int(m.group("id")) if m else None, str(path), err.code, str(err)))
    labelled = [g for g in good if table.redshift is not None and _label_ok(table.redshift[g[0]])]
    unlabelled = [g for g in good if not (table.redshift is not None and _label_ok(table.redshift[g[0]]))]
    size = sum(p.stat().st_size for _row, f in good for p in f.paths)
    return _Plan(table, labelled + unlabelled, rejected, size)


def _duplicate_rows(table: ObjectTable) -> dict[int, list[int]]:
    counts = Counter(int(i) for i, null in zip(table.ids, table.id_null, strict=True) if not null)
    twice = {i for i, c in counts.items() if c > 1}
    rows: dict[int, list[int]] = {}
    for r, i in enumerate(table.ids):
        if not table.id_null[r] and int(i) in twice:
            rows.setdefault(int(i), []).append(r)
    return rows


def _row_problem(table: ObjectTable, row: int, dup: dict[int, list[int]]) -> FitsInputError | None:
    """Why a table row cannot become an object (None when it can)."""
    src = table.source
    if table.id_null[row]:
        return BadRowError(src, f"row {row} has no object id", "bad_id")
    oid = int(table.ids[row])
    if oid in dup:
        return DuplicateIdError(src, f"object id {oid} occurs in {len(dup[oid])} rows {dup[oid][:5]}; all are left out")
    mags = table.magnitudes[row]
    if not (np.isfinite(mags).all() and ((mags >= MAG_RANGE[0]) & (mags <= MAG_RANGE[1])).all()):
        return BadRowError(
            src,
            f"row {row} (id {oid}) magnitudes {mags.tolist()} are null, non-finite or outside {list(MAG_RANGE)}",
            "bad_magnitude",
        )
    if table.ra is not None and table.dec is not None:
        ra, dec = float(table.ra[row]), float(table.dec[row])
        if not (np.isfinite(ra) and np.isfinite(dec) and 0.0 <= ra <= 360.0 and -90.0 <= dec <= 90.0):
            return BadRowError(
                src,
                f"row {row} (id {oid}) position ra={ra}, dec={dec} is null or outside ra [0, 360], dec [-90, 90] deg",
                "bad_position",
            )
    return None
