"""The shard format, the readers for every accepted input, and each named bad-shard error."""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save as st_save
from torch.utils.data import TensorDataset

from cosmicai import shards as S


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def _good_arrays(n: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "object_id": np.arange(n, dtype=np.int64) + 100,
        "images": rng.normal(size=(n, 5, 32, 32)).astype(np.float32),
        "magnitudes": rng.normal(18, 1, size=(n, 5)).astype(np.float32),
        "redshift": rng.uniform(0, 0.4, n).astype(np.float32),
    }


# ------------------------------------------------------------------ good input


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pt"])
def test_round_trip_every_format(make_shard, shard_factory, fmt):
    path = make_shard(6, seed=5, fmt=fmt)
    got = S.read_shard(path)
    want = shard_factory(6, 5)
    assert got.n == 6 and got.has_redshift
    assert got.images.dtype == np.float32 and got.images.shape == (6, 5, 32, 32)
    assert got.magnitudes.dtype == np.float32 and got.object_ids.dtype == np.int64
    np.testing.assert_array_equal(got.images, want.images)
    np.testing.assert_array_equal(got.magnitudes, want.magnitudes)
    np.testing.assert_array_equal(got.redshift, want.redshift)
    np.testing.assert_array_equal(got.object_ids, np.arange(6))


def test_reference_pt_partition_float64_magnitudes_become_float32(tmp_path):
    mags64 = np.random.default_rng(0).normal(18, 1, (3, 5))
    path = tmp_path / "part.pt"
    torch.save(TensorDataset(torch.zeros(3, 5, 32, 32), torch.from_numpy(mags64), torch.ones(3)), path)
    shard = S.read_shard(path)
    assert shard.magnitudes.dtype == np.float32
    np.testing.assert_allclose(shard.magnitudes, mags64.astype(np.float32))
    np.testing.assert_array_equal(shard.object_ids, [0, 1, 2])  # row numbers


def test_pt_without_redshift(tmp_path):
    path = tmp_path / "nolabel.pt"
    torch.save(TensorDataset(torch.zeros(2, 5, 32, 32), torch.zeros(2, 5)), path)
    assert S.read_shard(path).redshift is None


def test_centre_crop_64_to_32(make_shard, shard_factory):
    full = shard_factory(3, 9, size=64)
    got = S.read_shard(make_shard(3, 9, size=64, fmt="npz"))
    np.testing.assert_array_equal(got.images, full.images[:, :, 16:48, 16:48])


def test_written_64_shard_is_stored_cropped(make_shard):
    path = make_shard(2, size=64)
    assert S.read_shard_header(path.read_bytes()[: S.HEADER_PROBE_BYTES]).count == 2
    header = json.loads(path.read_bytes()[8 : 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])
    assert header["images"]["shape"] == [2, 5, 32, 32]
    assert header["__metadata__"] == {
        "format": "cosmicai.shard",
        "version": "1",
        "count": "2",
        "has_redshift": "true",
    }


def test_format_detected_by_content_not_extension(make_shard, tmp_path):
    st = make_shard(3, fmt="safetensors")
    disguised = tmp_path / "looks_like.npz"
    disguised.write_bytes(st.read_bytes())
    assert S.detect_format(disguised.read_bytes()) == "safetensors"
    assert S.read_shard(disguised).n == 3
    npz_as_pt = tmp_path / "x.pt"
    npz_as_pt.write_bytes(make_shard(2, fmt="npz").read_bytes())
    assert S.detect_format(npz_as_pt.read_bytes()) == "npz"
    assert S.read_shard(npz_as_pt).n == 2


def test_read_from_bytes_uses_given_name(make_shard):
    data = make_shard(2).read_bytes()
    assert S.read_shard(data, name="s3://b/k").n == 2
    with pytest.raises(S.ShardUnreadableError, match="s3://b/k"):
        S.read_shard(data[:-10], name="s3://b/k")


def test_shard_to_bytes_round_trip_without_redshift(shard_factory):
    shard = shard_factory(4, 2, with_redshift=False)
    data = S.shard_to_bytes(shard)
    back = S.read_shard(data)
    assert back.redshift is None
    header = S.read_shard_header(data[:1024], "x")
    assert header == S.ShardHeader(count=4, has_redshift=False, format="safetensors")


# ------------------------------------------------------------------ header probe


def test_header_from_prefix_only(make_shard):
    data = make_shard(7, with_redshift=True).read_bytes()
    prefix = data[: S.HEADER_PROBE_BYTES]
    assert len(data) > S.HEADER_PROBE_BYTES  # the probe really is a prefix
    assert S.read_shard_header(prefix, "p") == S.ShardHeader(7, True, "safetensors")


def test_header_prefix_too_short_says_how_much_is_needed(make_shard):
    data = make_shard(2).read_bytes()
    hlen = struct.unpack("<Q", data[:8])[0]
    with pytest.raises(S.ShardHeaderIncompleteError, match="needs") as info:
        S.read_shard_header(data[:20], "short")
    assert info.value.needed == 8 + hlen


@pytest.mark.parametrize("fmt", ["npz", "pt"])
def test_header_falls_back_for_other_formats(make_shard, fmt):
    data = make_shard(2, fmt=fmt).read_bytes()
    assert S.read_shard_header(data[: S.HEADER_PROBE_BYTES], "x") == S.ShardHeader(None, None, fmt)


def test_header_of_garbage_is_unknown_format():
    with pytest.raises(S.UnknownShardFormatError):
        S.read_shard_header(b"hello, this is not a shard at all", "g")


# ------------------------------------------------------------------ bad input


def _expect(exc: type[S.ShardError], path: Path, code: str, match: str | None = None):
    with pytest.raises(exc, match=match) as info:
        S.read_shard(path)
    assert str(path) in str(info.value), "the message must name the file"
    assert info.value.code == code
    assert isinstance(info.value, S.ShardError) and isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize("fmt", ["safetensors", "npz", "pt"])
def test_truncated_is_unreadable(make_shard, tmp_path, fmt):
    data = make_shard(4, fmt=fmt).read_bytes()
    bad = tmp_path / f"trunc.{fmt}"
    bad.write_bytes(data[: len(data) // 2])
    _expect(S.ShardUnreadableError, bad, "unreadable")


def test_zero_bytes_and_tiny_files_are_unreadable(tmp_path):
    empty = tmp_path / "zero.safetensors"
    empty.write_bytes(b"")
    _expect(S.ShardUnreadableError, empty, "unreadable", "0 bytes")
    tiny = tmp_path / "tiny.bin"
    tiny.write_bytes(b"\x01\x02")
    _expect(S.ShardUnreadableError, tiny, "unreadable")


def test_missing_file_is_unreadable(tmp_path):
    _expect(S.ShardUnreadableError, tmp_path / "nope.safetensors", "unreadable", "cannot read")


def test_corrupt_safetensors_header_json(make_shard, tmp_path):
    data = bytearray(make_shard(2).read_bytes())
    data[9:14] = b"\xff\xfe\x00!!"
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(bytes(data))
    _expect(S.ShardUnreadableError, bad, "unreadable", "header")


def test_unknown_formats(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_bytes(b"object_id,z\n1,0.1\n2,0.2\n")
    _expect(S.UnknownShardFormatError, text, "unknown_format")
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hi")
    _expect(S.UnknownShardFormatError, z, "unknown_format", "neither")
    foreign = tmp_path / "weights.safetensors"
    foreign.write_bytes(st_save({"w": np.zeros(3, np.float32)}, metadata={"format": "pt"}))
    _expect(S.UnknownShardFormatError, foreign, "unknown_format", "cosmicai.shard")


class _Evil:
    """Unpickling this would run a shell command; the reader must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pt_with_disallowed_class_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save(_Evil(marker), path)
    _expect(S.UnknownShardFormatError, path, "unknown_format", "allow-list")
    assert not marker.exists()


def test_pt_with_other_harmless_class_is_refused(tmp_path):
    import argparse

    path = tmp_path / "ns.pt"
    torch.save(argparse.Namespace(images=torch.zeros(1, 5, 32, 32)), path)
    _expect(S.UnknownShardFormatError, path, "unknown_format", "allow-list")


def test_allow_list_does_not_leak_after_reading(make_shard):
    path = make_shard(2, fmt="pt")
    S.read_shard(path)
    import pickle

    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("images", np.zeros((4, 3, 32, 32), np.float32), "images has shape"),
        ("images", np.zeros((4, 5, 30, 30), np.float32), "30x30"),
        ("images", np.zeros((4, 5, 32, 32), np.int16), "dtype int16"),
        ("magnitudes", np.zeros((4, 4), np.float32), "magnitudes has shape"),
        ("object_id", np.arange(4, dtype=np.float64), "object_id has dtype"),
        ("redshift", np.zeros((4, 2), np.float32), "redshift has shape"),
    ],
)
def test_wrong_shape_or_dtype(tmp_path, key, value, match):
    arrays = _good_arrays() | {key: value}
    _expect(S.ShardShapeError, _npz(tmp_path / "bad.npz", **arrays), "bad_shape", match)


def test_missing_and_unexpected_arrays(tmp_path):
    arrays = _good_arrays()
    del arrays["magnitudes"]
    _expect(S.ShardShapeError, _npz(tmp_path / "m.npz", **arrays), "bad_shape", "missing")
    arrays = _good_arrays() | {"extra": np.zeros(4)}
    _expect(S.ShardShapeError, _npz(tmp_path / "e.npz", **arrays), "bad_shape", "unexpected")


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    arrays = _good_arrays() | {"object_id": np.array([1, "a", None, 3], dtype=object)}
    _expect(S.ShardShapeError, _npz(tmp_path / "obj.npz", **arrays), "bad_shape", "pickled")


def test_length_mismatch(tmp_path):
    arrays = _good_arrays() | {"redshift": np.zeros(3, np.float32)}
    err = _expect(S.ShardLengthMismatchError, _npz(tmp_path / "len.npz", **arrays), "length_mismatch")
    assert "'redshift': 3" in str(err)


def test_metadata_count_mismatch(tmp_path):
    a = _good_arrays()
    path = tmp_path / "meta.safetensors"
    path.write_bytes(st_save(a, metadata={"format": "cosmicai.shard", "version": "1", "count": "9"}))
    _expect(S.ShardLengthMismatchError, path, "length_mismatch", "metadata count 9")


@pytest.mark.parametrize(
    "key,row,value",
    [("images", 2, np.nan), ("magnitudes", 0, np.inf), ("redshift", 3, -np.inf)],
)
def test_non_finite(tmp_path, key, row, value):
    arrays = _good_arrays()
    arrays[key] = arrays[key].copy()
    arrays[key][row, ...] = value
    err = _expect(S.ShardNonFiniteError, _npz(tmp_path / "nan.npz", **arrays), "non_finite")
    assert key in str(err) and f"[{row}]" in str(err)


def test_nan_in_cropped_border_still_counts(tmp_path):
    # NaN outside the central crop is still a broken input: reject it, do not hide it.
    arrays = _good_arrays() | {"images": np.zeros((4, 5, 64, 64), np.float32)}
    arrays["images"][1, 0, 0, 0] = np.nan
    _expect(S.ShardNonFiniteError, _npz(tmp_path / "edge.npz", **arrays), "non_finite")


def test_empty_shard(tmp_path):
    arrays = {k: v[:0] for k, v in _good_arrays().items()}
    _expect(S.EmptyShardError, _npz(tmp_path / "empty.npz", **arrays), "empty")
    st = tmp_path / "empty.safetensors"
    st.write_bytes(st_save(arrays))
    _expect(S.EmptyShardError, st, "empty")
    pt = tmp_path / "empty.pt"
    torch.save(TensorDataset(torch.zeros(0, 5, 32, 32), torch.zeros(0, 5)), pt)
    _expect(S.EmptyShardError, pt, "empty")


def test_duplicate_object_ids(tmp_path):
    arrays = _good_arrays() | {"object_id": np.array([7, 8, 7, 9], dtype=np.int64)}
    err = _expect(S.DuplicateObjectIdError, _npz(tmp_path / "dup.npz", **arrays), "duplicate_ids")
    assert "[7]" in str(err)


def test_write_shard_validates_before_writing(shard_factory, tmp_path):
    shard = shard_factory(3)
    shard.magnitudes[1, 1] = np.nan
    target = tmp_path / "never.safetensors"
    with pytest.raises(S.ShardNonFiniteError, match=str(target)):
        S.write_shard(shard, target)
    assert not target.exists()


def test_error_codes_are_distinct():
    classes = [
        S.ShardUnreadableError,
        S.UnknownShardFormatError,
        S.ShardShapeError,
        S.ShardLengthMismatchError,
        S.ShardNonFiniteError,
        S.EmptyShardError,
        S.DuplicateObjectIdError,
    ]
    codes = [c.code for c in classes]
    assert codes == [
        "unreadable",
        "unknown_format",
        "bad_shape",
        "length_mismatch",
        "non_finite",
        "empty",
        "duplicate_ids",
    ]
    assert all(issubclass(c, S.ShardError) for c in classes)


def test_garbage_pickle_bytes_are_unreadable(tmp_path):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"\x80\x02" + bytes(range(256)) * 4)
    _expect(S.ShardUnreadableError, bad, "unreadable")


def test_cli_inspect_reports_valid_and_invalid(make_shard, tmp_path, capsys):
    from cosmicai.cli import main

    good = make_shard(5, seed=1, id_start=40, size=64)
    unlabelled = make_shard(3, with_redshift=False, fmt="pt")
    bad = _npz(tmp_path / "dup.npz", **(_good_arrays() | {"object_id": np.array([1, 1, 2, 3])}))
    assert main(["inspect", str(good), str(unlabelled)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: safetensors, 5 objects" in out and "40..44" in out
    assert "(5, 5, 32, 32)" in out and "redshift   float32 range" in out
    assert f"{unlabelled}: pt, 3 objects" in out and "none (unlabelled)" in out
    assert main(["inspect", "--json", str(good), str(bad)]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["valid"] and lines[0]["count"] == 5 and lines[0]["has_redshift"]
    assert lines[1] == lines[1] | {"valid": False, "error": "duplicate_ids", "format": "npz"}


def test_orchestration_path_needs_no_torch(make_shard):
    # Init/Summarize run in an image without torch: shards, metrics and catalog must not import it.
    import subprocess
    import sys

    path = make_shard(3)
    code = (
        "import sys, cosmicai.shards as S, cosmicai.metrics, cosmicai.catalog\n"
        f"d = open({str(path)!r}, 'rb').read()\n"
        "assert S.read_shard_header(d[:S.HEADER_PROBE_BYTES]).count == 3\n"
        "assert S.read_shard(d).n == 3\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------ optional sky positions


def _with_position(n: int = 4) -> S.Shard:
    a = _good_arrays(n)
    return S.Shard(
        a["object_id"],
        a["images"],
        a["magnitudes"],
        a["redshift"],
        ra=np.linspace(0.0, 359.9999999, n),
        dec=np.linspace(-90.0, 89.123456789, n),
    )


def test_positions_round_trip_as_float64(tmp_path):
    shard = _with_position()
    got = S.read_shard(S.shard_to_bytes(shard))
    assert got.has_position and got.ra.dtype == got.dec.dtype == np.float64
    np.testing.assert_array_equal(got.ra, shard.ra)
    np.testing.assert_array_equal(got.dec, shard.dec)
    assert S.read_shard_header(S.shard_to_bytes(shard)[: S.HEADER_PROBE_BYTES]).count == 4
    npz = _npz(tmp_path / "p.npz", **_good_arrays(), ra=shard.ra, dec=shard.dec)
    np.testing.assert_array_equal(S.read_shard(npz).ra, shard.ra)


def test_shards_without_positions_are_unchanged(shard_factory):
    """Old readers and old files: a position-less shard holds exactly the original tensors."""
    from safetensors.numpy import load

    shard = shard_factory(5)
    data = S.shard_to_bytes(shard)
    assert set(load(data)) == {"object_id", "images", "magnitudes", "redshift"}
    got = S.read_shard(data)
    assert not got.has_position and got.ra is None and got.dec is None


def test_position_errors_are_named():
    shard = _with_position()
    with pytest.raises(S.ShardShapeError, match="ra without dec"):
        S.validate_shard(S.Shard(shard.object_ids, shard.images, shard.magnitudes, ra=shard.ra), "x")
    with pytest.raises(S.ShardShapeError, match="dec has dtype int64"):
        S.validate_shard(
            S.Shard(shard.object_ids, shard.images, shard.magnitudes, ra=shard.ra, dec=np.zeros(4, dtype=np.int64)), "x"
        )
    with pytest.raises(S.ShardLengthMismatchError, match="'ra': 3"):
        S.validate_shard(S.Shard(shard.object_ids, shard.images, shard.magnitudes, ra=shard.ra[:3], dec=shard.dec), "x")
    bad = shard.dec.copy()
    bad[2] = np.nan
    with pytest.raises(S.ShardNonFiniteError, match=r"dec holds NaN/inf .* rows \[2\]"):
        S.validate_shard(S.Shard(shard.object_ids, shard.images, shard.magnitudes, ra=shard.ra, dec=bad), "x")
