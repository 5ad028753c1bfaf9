"""The cosmic-ai shard format and readers for every accepted input.

A shard is a safetensors file (version 1) holding `object_id` int64 (N,),
`images` float32 (N, 5, 32, 32), `magnitudes` float32 (N, 5) and optionally
`redshift` float32 (N,) and the sky position pair `ra`, `dec` float64 (N,)
in degrees, plus string metadata (format, version, count, has_redshift).
Positions are optional and travel through to the catalogs; shards without them
are byte-identical to those written before positions existed. `read_shard` also
reads `.npz` files with the same array names and the reference's `.pt` TensorDataset
partitions (weights_only + allow-list).
The format is detected from the bytes, never from the file name.

Torch is imported lazily (only for `.pt` input) so the orchestration image,
which has no torch, can still read and inspect shards.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_NAME = "cosmicai.shard"
FORMAT_VERSION = "1"
BANDS = 5
CROP = 32
# Enough for the safetensors header of any shard we write (about 600 bytes) with
# generous room for foreign metadata; Init fetches this many bytes per shard.
HEADER_PROBE_BYTES = 64 * 1024
# Refuse absurd header lengths before allocating anything for them.
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024

REQUIRED = ("object_id", "images", "magnitudes")
OPTIONAL = ("redshift", "ra", "dec")
# float64: a float32 right ascension near 360 deg resolves only ~0.1 arcsec.
POSITION = ("ra", "dec")


class ShardError(ValueError):
    """Base of every bad-shard error; `code` is the short tag used in summaries."""

    code = "shard_error"

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}")


class ShardUnreadableError(ShardError):
    """Truncated or corrupt bytes."""

    code = "unreadable"


class UnknownShardFormatError(ShardError):
    """The bytes are none of the accepted formats (or hold a disallowed pickle)."""

    code = "unknown_format"


class ShardShapeError(ShardError):
    """An array is missing or has the wrong shape or dtype."""

    code = "bad_shape"


class ShardLengthMismatchError(ShardError):
    """The arrays disagree on the number of objects."""

    code = "length_mismatch"


class ShardNonFiniteError(ShardError):
    """NaN or infinity in images, magnitudes or redshift."""

    code = "non_finite"


class EmptyShardError(ShardError):
    """The shard holds no objects."""

    code = "empty"


class DuplicateObjectIdError(ShardError):
    """Two objects share an id."""

    code = "duplicate_ids"


class ShardHeaderIncompleteError(ShardUnreadableError):
    """The probed prefix ends before the safetensors header does; `needed` says how many bytes."""

    def __init__(self, source: str, needed: int, have: int) -> None:
        self.needed = needed
        super().__init__(source, f"safetensors header needs {needed} bytes but only {have} were read")


@dataclass
class Shard:
    """A batch of objects: ids, 5-band 32x32 images, magnitudes, optional true redshift and ra/dec."""

    object_ids: np.ndarray
    images: np.ndarray
    magnitudes: np.ndarray
    redshift: np.ndarray | None = None
    ra: np.ndarray | None = None  # degrees, float64 (N,); with dec, or neither
    dec: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of objects."""
        return int(self.object_ids.shape[0])

    @property
    def has_redshift(self) -> bool:
        """Whether true redshifts are present."""
        return self.redshift is not None

    @property
    def has_position(self) -> bool:
        """Whether sky positions (ra, dec) are present."""
        return self.ra is not None

    def rows(self, sl: slice) -> Shard:
        """The objects in `sl`, every array (the optional ones where present) sliced alike."""

        def cut(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[sl]

        return Shard(
            self.object_ids[sl], self.images[sl], self.magnitudes[sl], cut(self.redshift), cut(self.ra), cut(self.dec)
        )


def concat_shards(shards: list[Shard]) -> Shard:
    """One shard holding the objects of `shards` in order; they must agree on which optional arrays they have."""

    def cat(arrays: list[np.ndarray | None], what: str) -> np.ndarray | None:
        present = [a for a in arrays if a is not None]
        if not present:
            return None
        if len(present) != len(arrays):
            raise ValueError(f"cannot concatenate shards where only some have {what}")
        return np.concatenate(present)

    ids = np.concatenate([s.object_ids for s in shards])
    images = np.concatenate([s.images for s in shards])
    magnitudes = np.concatenate([s.magnitudes for s in shards])
    return Shard(
        ids,
        images,
        magnitudes,
        cat([s.redshift for s in shards], "redshift"),
        cat([s.ra for s in shards], "ra"),
        cat([s.dec for s in shards], "dec"),
    )


@dataclass(frozen=True)
class ShardHeader:
    """What the first bytes of a shard tell: count and labels are None when not knowable.

    A dataclass, not a NamedTuple: a tuple's own `count` method would clash with the field.
    """

    count: int | None
    has_redshift: bool | None
    format: str


# ---------------------------------------------------------------- detection


def detect_format(data: bytes, name: str = "<bytes>") -> str:
    """Return "safetensors", "npz" or "pt" from the content; raise on anything else."""
    if len(data) == 0:
        raise ShardUnreadableError(name, "file is empty (0 bytes)")
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _zip_kind(data, name)
    # safetensors first: its 8-byte little-endian header length can itself start with
    # 0x80 (e.g. a 384-byte header), which is also the pickle protocol opcode.
    if len(data) >= 9:
        (hlen,) = struct.unpack("<Q", data[:8])
        if 0 < hlen <= _MAX_SAFETENSORS_HEADER and data[8:9] == b"{":
            return "safetensors"
    if data[:1] == b"\x80":
        # Legacy (non-zip) torch.save output starts with a pickle protocol opcode.
        return "pt"
    if len(data) < 9:
        raise ShardUnreadableError(name, f"only {len(data)} bytes: too short for any shard format")
    raise UnknownShardFormatError(
        name,
        f"not a safetensors, npz or torch file (first bytes {data[:8]!r}); "
        "write shards with cosmicai.shards.write_shard",
    )


def _zip_kind(data: bytes, name: str) -> str:
    try:
        names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ShardUnreadableError(name, f"corrupt or truncated zip archive ({exc})") from exc
    if any(n.endswith("data.pkl") for n in names):
        return "pt"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    raise UnknownShardFormatError(name, f"zip archive is neither an npz nor a torch file (members {names[:5]})")


# ---------------------------------------------------------------- reading


def _source_bytes(src: Path | str | bytes, name: str | None) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), name or "<bytes>"
    path = Path(src)
    label = name or str(path)
    try:
        return path.read_bytes(), label
    except OSError as exc:
        raise ShardUnreadableError(label, f"cannot read file ({exc.strerror or exc})") from exc


def read_shard(src: Path | str | bytes, name: str | None = None) -> Shard:
    """Read and validate a shard from a path or bytes; `name` labels error messages."""
    data, label = _source_bytes(src, name)
    kind = detect_format(data, label)
    if kind == "safetensors":
        arrays, meta = _read_safetensors(data, label)
    elif kind == "npz":
        arrays, meta = _read_npz(data, label), {}
    else:
        arrays, meta = _read_pt(data, label), {}
    shard = _build(arrays, label)
    if "count" in meta and meta["count"] != str(shard.n):
        raise ShardLengthMismatchError(label, f"metadata count {meta['count']} but arrays hold {shard.n} objects")
    return shard


def _read_safetensors(data: bytes, name: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.numpy import load

    header = _parse_safetensors_header(data, name)
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    hlen = struct.unpack("<Q", data[:8])[0]
    if 8 + hlen + end > len(data):
        raise ShardUnreadableError(name, f"truncated: tensors need {8 + hlen + end} bytes, file has {len(data)}")
    try:
        arrays = load(data)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise ShardUnreadableError(name, f"corrupt safetensors data ({exc})") from exc
    meta = header.get("__metadata__") or {}
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise UnknownShardFormatError(name, f"safetensors file of format {meta.get('format')!r}, not {FORMAT_NAME!r}")
    if meta.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise UnknownShardFormatError(
            name, f"shard version {meta.get('version')!r}; this reader knows {FORMAT_VERSION!r}"
        )
    return arrays, meta


def _parse_safetensors_header(data: bytes, name: str) -> dict[str, Any]:
    if len(data) < 8:
        raise ShardUnreadableError(name, f"only {len(data)} bytes: no safetensors header")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > _MAX_SAFETENSORS_HEADER:
        raise ShardUnreadableError(name, f"safetensors header length {hlen} is implausible")
    if len(data) < 8 + hlen:
        raise ShardHeaderIncompleteError(name, 8 + hlen, len(data))
    try:
        header = json.loads(data[8 : 8 + hlen])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardUnreadableError(name, f"corrupt safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise ShardUnreadableError(name, "safetensors header is not a JSON object")
    return header


def _read_npz(data: bytes, name: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        # numpy raises ValueError for object arrays when pickles are disallowed.
        raise ShardShapeError(name, f"npz holds a non-numeric (pickled) array ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ShardUnreadableError(name, f"corrupt npz ({exc})") from exc


def _read_pt(data: bytes, name: str) -> dict[str, np.ndarray]:
    import pickle

    import torch
    from torch.utils.data import TensorDataset

    try:
        # The only non-tensor class a reference partition needs; everything
        # else is refused by the weights-only unpickler.
        with torch.serialization.safe_globals([TensorDataset]):
            obj = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[-1][:300]
        if "global" not in str(exc).lower():
            raise ShardUnreadableError(name, f"corrupt pickle in torch file ({first})") from exc
        raise UnknownShardFormatError(
            name,
            "torch file holds objects outside the allow-list (only TensorDataset and "
            f"tensors are accepted; nothing was executed): {first}",
        ) from exc
    except Exception as exc:  # torch raises many types on corrupt bytes; all mean "unreadable"
        raise ShardUnreadableError(name, f"corrupt or truncated torch file ({type(exc).__name__}: {exc})") from exc
    return _pt_arrays(obj, name)


def _pt_arrays(obj: Any, name: str) -> dict[str, np.ndarray]:
    import torch
    from torch.utils.data import TensorDataset

    if isinstance(obj, TensorDataset):
        obj = tuple(obj.tensors)
    if isinstance(obj, dict):
        if not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise UnknownShardFormatError(name, "torch dict shard holds non-tensor values")
        arrays = {str(k): v.numpy() for k, v in obj.items()}
    elif isinstance(obj, (tuple, list)) and len(obj) in (2, 3):
        if not all(isinstance(t, torch.Tensor) for t in obj):
            raise UnknownShardFormatError(name, "torch tuple shard holds non-tensor values")
        # Reference partitions: (images, magnitudes[, redshift]); ids are row numbers.
        arrays = {"images": obj[0].numpy(), "magnitudes": obj[1].numpy()}
        if len(obj) == 3:
            arrays["redshift"] = obj[2].numpy()
    else:
        raise UnknownShardFormatError(
            name, f"torch file holds a {type(obj).__name__}, not a TensorDataset of 2-3 tensors"
        )
    if "object_id" not in arrays and "images" in arrays:
        arrays["object_id"] = np.arange(arrays["images"].shape[0], dtype=np.int64)
    return arrays


# ---------------------------------------------------------------- validation


def _build(arrays: dict[str, np.ndarray], name: str) -> Shard:
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ShardShapeError(name, f"missing array(s) {missing}; found {sorted(arrays)} (need {list(REQUIRED)})")
    unknown = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ShardShapeError(name, f"unexpected array(s) {unknown}")
    return validate_shard(
        Shard(
            object_ids=arrays["object_id"],
            images=arrays["images"],
            magnitudes=arrays["magnitudes"],
            redshift=arrays.get("redshift"),
            ra=arrays.get("ra"),
            dec=arrays.get("dec"),
        ),
        name,
    )


def _check_float(name: str, what: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind != "f":
        raise ShardShapeError(name, f"{what} has dtype {a.dtype}, expected a float type")
    return a.astype(np.float32, copy=False)


def centre_crop(images: np.ndarray, size: int = CROP) -> np.ndarray:
    """Crop (N, C, H, W) to the central size x size (64x64 cutouts -> 32x32)."""
    h, w = images.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top : top + size, left : left + size]


def validate_shard(shard: Shard, name: str = "<shard>") -> Shard:
    """Check shapes, dtypes, lengths, finiteness and id uniqueness; return a normalised copy.

    Images larger than 32x32 (square, even margin) are centre-cropped; float
    arrays become float32 and integer ids int64.
    """
    ids, images, mags, z = shard.object_ids, shard.images, shard.magnitudes, shard.redshift
    ids, images, mags = np.asarray(ids), np.asarray(images), np.asarray(mags)
    if ids.ndim != 1:
        raise ShardShapeError(name, f"object_id has shape {ids.shape}, expected (N,)")
    if ids.dtype.kind not in "iu":
        raise ShardShapeError(name, f"object_id has dtype {ids.dtype}, expected an integer type")
    if ids.dtype.kind == "u" and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise ShardShapeError(name, "object_id values exceed the int64 range")
    if images.ndim != 4 or images.shape[1] != BANDS:
        raise ShardShapeError(name, f"images has shape {images.shape}, expected (N, {BANDS}, {CROP}, {CROP})")
    h, w = images.shape[2:]
    if h != w or h < CROP or (h - CROP) % 2:
        raise ShardShapeError(
            name,
            f"images are {h}x{w}; expected {CROP}x{CROP} or a larger square to centre-crop (e.g. 64x64)",
        )
    if mags.ndim != 2 or mags.shape[1] != BANDS:
        raise ShardShapeError(name, f"magnitudes has shape {mags.shape}, expected (N, {BANDS})")
    images = _check_float(name, "images", images)
    mags = _check_float(name, "magnitudes", mags)
    if z is not None:
        z = np.asarray(z)
        if z.ndim == 2 and z.shape[1] == 1:
            z = z[:, 0]
        if z.ndim != 1:
            raise ShardShapeError(name, f"redshift has shape {z.shape}, expected (N,)")
        z = _check_float(name, "redshift", z)

    ra, dec = _check_position(name, shard.ra, shard.dec)

    lengths = {"object_id": ids.shape[0], "images": images.shape[0], "magnitudes": mags.shape[0]}
    if z is not None:
        lengths["redshift"] = z.shape[0]
    if ra is not None and dec is not None:
        lengths |= {"ra": ra.shape[0], "dec": dec.shape[0]}
    if len(set(lengths.values())) != 1:
        raise ShardLengthMismatchError(name, f"arrays disagree on the object count: {lengths}")
    if ids.shape[0] == 0:
        raise EmptyShardError(name, "shard holds no objects")

    for what, a in (("images", images), ("magnitudes", mags), ("redshift", z), ("ra", ra), ("dec", dec)):
        if a is not None and not np.isfinite(a).all():
            bad = np.unique(np.nonzero(~np.isfinite(a.reshape(a.shape[0], -1)))[0])
            raise ShardNonFiniteError(
                name,
                f"{what} holds NaN/inf in {bad.size} object(s), first at rows {bad[:5].tolist()}",
            )

    uniq, counts = np.unique(ids, return_counts=True)
    if uniq.size != ids.size:
        dup = uniq[counts > 1]
        raise DuplicateObjectIdError(name, f"{dup.size} object id(s) occur more than once, e.g. {dup[:5].tolist()}")

    if h != CROP:
        images = centre_crop(images)
    return Shard(
        object_ids=ids.astype(np.int64, copy=False),
        images=np.ascontiguousarray(images, dtype=np.float32),
        magnitudes=np.ascontiguousarray(mags, dtype=np.float32),
        redshift=None if z is None else np.ascontiguousarray(z, dtype=np.float32),
        ra=None if ra is None else np.ascontiguousarray(ra, dtype=np.float64),
        dec=None if dec is None else np.ascontiguousarray(dec, dtype=np.float64),
    )


def _check_position(
    name: str, ra: np.ndarray | None, dec: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """ra and dec come as a pair of 1-D float arrays (degrees), or not at all."""
    if (ra is None) != (dec is None):
        have, lack = ("ra", "dec") if dec is None else ("dec", "ra")
        raise ShardShapeError(name, f"{have} without {lack}: sky positions need both")
    if ra is None or dec is None:
        return None, None
    out = []
    for what, a in (("ra", np.asarray(ra)), ("dec", np.asarray(dec))):
        if a.ndim != 1:
            raise ShardShapeError(name, f"{what} has shape {a.shape}, expected (N,)")
        if a.dtype.kind != "f":
            raise ShardShapeError(name, f"{what} has dtype {a.dtype}, expected a float type")
        out.append(a.astype(np.float64, copy=False))
    return out[0], out[1]


# ---------------------------------------------------------------- writing


def shard_to_bytes(shard: Shard, name: str = "<shard>") -> bytes:
    """Validate and serialise a shard to the safetensors shard format."""
    from safetensors.numpy import save

    s = validate_shard(shard, name)
    tensors = {"object_id": s.object_ids, "images": s.images, "magnitudes": s.magnitudes}
    if s.redshift is not None:
        tensors["redshift"] = s.redshift
    if s.ra is not None and s.dec is not None:
        tensors |= {"ra": s.ra, "dec": s.dec}
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "count": str(s.n),
        "has_redshift": "true" if s.has_redshift else "false",
    }
    return save(tensors, metadata=meta)


def write_shard(shard: Shard, path: Path | str) -> int:
    """Write a shard file (atomically, via a temporary sibling); return the bytes written."""
    path = Path(path)
    data = shard_to_bytes(shard, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


# ---------------------------------------------------------------- header probe


def read_shard_header(prefix_bytes: bytes, name: str = "<bytes>") -> ShardHeader:
    """What the first HEADER_PROBE_BYTES of a shard say, without reading the data.

    Safetensors shards give count and has_redshift; npz and torch files give
    `ShardHeader(None, None, format)`, meaning "read the whole file to know".
    Raises `ShardHeaderIncompleteError` (with `.needed`) if the prefix is too short.
    """
    kind = _detect_prefix(prefix_bytes, name)
    if kind != "safetensors":
        return ShardHeader(count=None, has_redshift=None, format=kind)
    header = _parse_safetensors_header(prefix_bytes, name)
    meta = header.get("__metadata__") or {}
    if meta.get("format", FORMAT_NAME) != FORMAT_NAME:
        raise UnknownShardFormatError(name, f"safetensors file of format {meta.get('format')!r}, not {FORMAT_NAME!r}")
    ids = header.get("object_id")
    if not isinstance(ids, dict) or len(ids.get("shape", [])) != 1:
        raise ShardShapeError(name, "header has no 1-D object_id tensor")
    count = int(ids["shape"][0])
    if "count" in meta and meta["count"] != str(count):
        raise ShardLengthMismatchError(name, f"metadata count {meta['count']} but object_id holds {count}")
    if count == 0:
        raise EmptyShardError(name, "shard holds no objects")
    return ShardHeader(count=count, has_redshift="redshift" in header, format="safetensors")


def _detect_prefix(prefix: bytes, name: str) -> str:
    # A zip's central directory sits at the end, so a prefix cannot be opened as
    # a zip; the local-file magic is enough to say "npz or torch, read it all".
    if prefix[:4] == b"PK\x03\x04":
        return "npz" if b".npy" in prefix[:300] else "pt"
    return detect_format(prefix, name)
