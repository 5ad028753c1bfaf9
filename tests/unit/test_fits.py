"""FITS in (partition --from-fits), FITS out (export), and the round trip through the worker path.

Every malformed input is checked for its named code and a message naming the file (and HDU),
and for the accounting rule: every input object ends up in a shard or in `rejected`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cosmicai.cli import main
from cosmicai.data.fits import (
    BANDS,
    FitsBandError,
    FitsMissingBandError,
    FitsNonFiniteError,
    FitsNonNumericError,
    FitsShapeError,
    FitsSource,
    FitsTableError,
    FitsUnreadableError,
    ObjectFiles,
    band_of,
    read_object_pixels,
    read_object_table,
)
from cosmicai.data.partition import PartitionError, write_partition
from cosmicai.shards import centre_crop, read_shard

fits = pytest.importorskip("astropy.io.fits")
from astropy.table import Table  # noqa: E402  (after the importorskip)

# ------------------------------------------------------------------ helpers: cutouts and tables


def _cube(oid: int, size: int = 64) -> np.ndarray:
    """A recognisable (5, size, size) cutout: every pixel encodes id, band, row, column."""
    k, y, x = np.meshgrid(np.arange(5), np.arange(size), np.arange(size), indexing="ij")
    return (oid * 1e4 + k * 1e3 + y * 10 + x * 0.01).astype(np.float32)


def _mef(
    path: Path,
    cube: np.ndarray,
    labels: tuple[str | None, ...] = BANDS,
    key: str = "EXTNAME",
    order: tuple[int, ...] = (0, 1, 2, 3, 4),
    extra: list | None = None,
) -> Path:
    hdus = [fits.PrimaryHDU()]
    for k in order:
        hdu = fits.ImageHDU(cube[k])
        if labels[k] is not None:
            hdu.header[key] = labels[k]
        hdus.append(hdu)
    fits.HDUList(hdus + (extra or [])).writeto(path)
    return path


def _bands(folder: Path, oid: int, cube: np.ndarray, skip: str | None = None) -> None:
    for k, b in enumerate(BANDS):
        if b != skip:
            fits.PrimaryHDU(cube[k]).writeto(folder / f"{oid}_{b}.fits")


def _write_table(path: Path, cols: dict[str, list | np.ndarray]) -> Path:
    kind = path.suffix.lstrip(".")
    if kind == "fits":
        Table({k: np.asarray(v) for k, v in cols.items()}).write(path)
    elif kind == "csv":
        pacsv.write_csv(pa.table(cols), path)
    else:
        pq.write_table(pa.table(cols), path)
    return path


def _table_cols(ids: list[int], files: list[str] | None = None, z: bool = True, pos: bool = True) -> dict[str, list]:
    cols: dict[str, list] = {"object_id": ids}
    for k, b in enumerate(BANDS):
        cols[f"mag_{b}"] = [18.0 + k * 0.5 + i * 0.01 for i in ids]
    if z:
        cols["redshift"] = [0.05 + 0.01 * (i % 30) for i in ids]
    if pos:
        cols["ra"] = [10.0 + i * 0.123456789 for i in ids]
        cols["dec"] = [-30.0 + i * 0.0987654321 for i in ids]
    if files is not None:
        cols["file"] = files
    return cols


def _partition(tmp_path: Path, cutouts: list[Path], table: Path, **kw):
    source = FitsSource(cutouts, table, **kw)
    out = tmp_path / "shards"
    result = write_partition(source, str(out), 1.0, progress=False)
    shards = [read_shard(p) for p in sorted(out.glob("part-*.safetensors"))]
    return result, shards, json.loads((out / "manifest.json").read_text())


# ------------------------------------------------------------------ the accepted layouts


@pytest.mark.parametrize(
    "layout",
    [
        "mef_extname",
        "mef_filter_shuffled",
        "mef_order",
        "mef_with_mask",
        "cube_primary",
        "cube_extension",
        "bands",
        "sdss_names",
    ],
)
def test_every_layout_gives_the_same_cropped_pixels(tmp_path: Path, layout: str) -> None:
    cube = _cube(7)
    path = tmp_path / "7.fits"
    if layout == "mef_extname":
        _mef(path, cube)
    elif layout == "mef_filter_shuffled":  # HDU order z,u,i,g,r: labels decide
        _mef(path, cube, key="FILTER", order=(4, 0, 3, 1, 2))
    elif layout == "mef_order":
        _mef(path, cube, labels=(None,) * 5)
    elif layout == "mef_with_mask":  # an unlabelled extra HDU beside five labelled ones is ignored
        _mef(path, cube, extra=[fits.ImageHDU(np.zeros((64, 64), np.int16), name="MASK")])
    elif layout == "sdss_names":
        _mef(path, cube, labels=("SDSS_U", "sdss-g", "r-band", "I", "z band"), key="BAND")
    elif layout == "cube_primary":
        fits.PrimaryHDU(cube).writeto(path)
    elif layout == "cube_extension":
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube)]).writeto(path)
    if layout == "bands":
        _bands(tmp_path, 7, cube)
        files = ObjectFiles(band_files={b: tmp_path / f"7_{b}.fits" for b in BANDS})
    else:
        files = ObjectFiles(object_file=path)
    got = read_object_pixels(files)
    assert got.shape == (5, 32, 32) and got.dtype == np.float32
    np.testing.assert_array_equal(got, centre_crop(cube))


def test_odd_and_integer_cutouts(tmp_path: Path) -> None:
    odd = _cube(1, size=33)
    fits.PrimaryHDU(odd).writeto(tmp_path / "odd.fits")
    np.testing.assert_array_equal(read_object_pixels(ObjectFiles(tmp_path / "odd.fits")), odd[:, :32, :32])
    ints = (np.arange(5 * 32 * 32).reshape(5, 32, 32) % 30000).astype(np.int16)
    fits.PrimaryHDU(ints).writeto(tmp_path / "int.fits")
    got = read_object_pixels(ObjectFiles(tmp_path / "int.fits"))
    assert got.dtype == np.float32 and np.array_equal(got, ints.astype(np.float32))


def test_band_keywords() -> None:
    h = fits.Header()
    assert band_of(h) is None
    h["EXTNAME"] = "SCI"
    h["FILTER"] = "SDSS-R"
    assert band_of(h) == "r"  # EXTNAME names no band, FILTER does
    h["EXTNAME"] = "g"
    assert band_of(h) == "g"  # EXTNAME first
    assert band_of(fits.Header({"BAND": "y"})) is None


# ------------------------------------------------------------------ tables


@pytest.mark.parametrize("suffix", ["fits", "csv", "parquet"])
def test_table_formats_and_column_names(tmp_path: Path, suffix: str) -> None:
    cols = {
        "OBJID": [5, 6],
        "U": [18.0, 19.0],
        "G": [17.0, 18.0],
        "R": [16.5, 17.0],
        "I": [16.0, 16.5],
        "Z": [15.9, 16.2],
        "Z_SPEC": [0.1, -1.0],
        "RA": [1.5, 2.5],
        "DEC": [-1.0, 1.0],
    }
    t = read_object_table(_write_table(tmp_path / f"t.{suffix}", cols))
    assert t.ids.tolist() == [5, 6] and t.ids.dtype == np.int64
    np.testing.assert_allclose(t.magnitudes[1], [19.0, 18.0, 17.0, 16.5, 16.2])
    assert t.redshift is not None and t.redshift.tolist() == [0.1, -1.0]  # negative: unknown, decided later
    assert t.ra is not None and t.ra.tolist() == [1.5, 2.5] and t.files is None and t.band_files is None


def test_custom_magnitude_columns(tmp_path: Path) -> None:
    cols = {"object_id": [1], **{f"modelMag_{b}": [18.0] for b in BANDS}}
    path = _write_table(tmp_path / "t.parquet", cols)
    with pytest.raises(FitsTableError, match="no magnitude columns: need mag_u"):
        read_object_table(path)
    t = read_object_table(path, [f"modelMag_{b}" for b in BANDS])
    assert t.magnitudes.shape == (1, 5)


@pytest.mark.parametrize(
    "cols, match",
    [
        ({"name": ["a"], **{f"mag_{b}": [18.0] for b in BANDS}}, "no id column: need one of"),
        ({"object_id": [1.0], **{f"mag_{b}": [18.0] for b in BANDS}}, "ids must be integers"),
        ({"object_id": [1], "mag_u": [18.0]}, "no magnitude columns"),
        ({"object_id": [1], **{f"mag_{b}": ["x"] for b in BANDS}}, "magnitude column 'mag_u' is not numeric"),
        ({"object_id": [1], **{f"mag_{b}": [18.0] for b in BANDS}, "ra": [1.0]}, "'ra' without its pair"),
        (
            {"object_id": [1], **{f"mag_{b}": [18.0] for b in BANDS}, "file_u": ["a.fits"]},
            r"per-band file columns lack \['file_g'",
        ),
    ],
)
def test_unusable_tables_are_fatal_and_named(tmp_path: Path, cols: dict, match: str) -> None:
    path = _write_table(tmp_path / "t.parquet", cols)
    with pytest.raises(FitsTableError, match=match) as err:
        read_object_table(path)
    assert err.value.code == "bad_table" and str(path) in str(err.value)


def test_unreadable_and_empty_tables(tmp_path: Path) -> None:
    bad = tmp_path / "t.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    with pytest.raises(FitsTableError, match="not a readable fits table"):
        read_object_table(bad)
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(FitsTableError, match="empty"):
        read_object_table(tmp_path / "e.csv")
    with pytest.raises(FitsTableError, match="cannot read"):
        read_object_table(tmp_path / "missing.csv")


# ------------------------------------------------------------------ partition --from-fits


def test_partition_keeps_ids_pixels_magnitudes_labels_positions(tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    ids = list(range(100, 112))
    for i in ids:
        _mef(cut / f"{i}.fits", _cube(i))
    table = _write_table(tmp_path / "objects.fits", _table_cols(ids))  # no file column: <id>.fits
    result, shards, manifest = _partition(tmp_path, [cut], table)
    assert result.objects == 12 and result.rejected == [] and manifest["rejected"] == []
    assert manifest["sources"] == [str(table), str(cut)] and manifest["objects"] == 12
    got_ids = np.concatenate([s.object_ids for s in shards])
    assert got_ids.tolist() == ids
    want = _table_cols(ids)
    images = np.concatenate([s.images for s in shards])
    for k, i in enumerate(ids):
        np.testing.assert_array_equal(images[k], centre_crop(_cube(i)))
    mags = np.concatenate([s.magnitudes for s in shards])
    np.testing.assert_array_equal(mags[:, 2], np.float32(want["mag_r"]))
    np.testing.assert_array_equal(np.concatenate([s.redshift for s in shards]), np.float32(want["redshift"]))
    np.testing.assert_array_equal(np.concatenate([s.ra for s in shards]), want["ra"])  # float64, exact
    np.testing.assert_array_equal(np.concatenate([s.dec for s in shards]), want["dec"])


def test_file_columns_per_object_and_per_band(tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    _mef(cut / "a.fits", _cube(1))
    fits.PrimaryHDU(_cube(2)).writeto(cut / "b.fits.gz")  # compressed works too
    table = _write_table(tmp_path / "t.csv", _table_cols([1, 2], files=["a.fits", "cut/b.fits.gz"], pos=False))
    result, shards, _ = _partition(tmp_path, [cut], table)
    assert result.objects == 2 and shards[0].ra is None
    np.testing.assert_array_equal(shards[0].images[1], centre_crop(_cube(2)))

    band_dir = tmp_path / "bands"
    band_dir.mkdir()
    _bands(band_dir, 3, _cube(3))
    cols = _table_cols([3], pos=False) | {f"file_{b}": [f"3_{b}.fits"] for b in BANDS}
    result, shards, _ = _partition(tmp_path / "p2", [band_dir], _write_table(tmp_path / "t2.parquet", cols))
    np.testing.assert_array_equal(shards[0].images[0], centre_crop(_cube(3)))


def test_partially_labelled_table_gives_labelled_then_unlabelled_shards(tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    ids = list(range(10))
    for i in ids:
        fits.PrimaryHDU(_cube(i, 32)).writeto(cut / f"{i}.fits")
    cols = _table_cols(ids)
    cols["redshift"] = [0.1, None, 0.2, -99.0, 0.3, float("nan"), 0.4, 0.5, None, 0.6]
    result, shards, _ = _partition(tmp_path, [cut], _write_table(tmp_path / "t.parquet", cols))
    assert [s.has_redshift for s in shards] == [True, False]
    assert shards[0].object_ids.tolist() == [0, 2, 4, 6, 7, 9] and shards[1].object_ids.tolist() == [1, 3, 5, 8]
    np.testing.assert_array_equal(shards[0].redshift, np.float32([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]))


def _bad_inputs(cut: Path) -> tuple[dict[int, tuple[str, str]], dict[str, list]]:
    """Good objects 0..2, then one object per malformed case: {id: (code, text the message holds)}."""
    good = [0, 1, 2]
    for i in good:
        _mef(cut / f"{i}.fits", _cube(i))
    expect: dict[int, tuple[str, str]] = {}
    _mef(cut / "10.fits", _cube(10)[:4], labels=BANDS[:4], order=(0, 1, 2, 3))
    expect[10] = ("missing_band", "10.fits: HDUs name bands ['u', 'g', 'r', 'i'] by EXTNAME/FILTER/BAND; missing ['z']")
    _mef(cut / "11.fits", _cube(11)[:4], labels=(None,) * 4, order=(0, 1, 2, 3))
    expect[11] = ("missing_band", "4 image HDU(s) [1, 2, 3, 4] and no band keywords")
    fits.PrimaryHDU(_cube(12, 16)).writeto(cut / "12.fits")
    expect[12] = ("bad_shape", "12.fits [HDU 0]: cutout is 16x16, smaller than 32x32")
    _mef(cut / "13.fits", _cube(13)[:, :, :40])
    expect[13] = ("bad_shape", "13.fits [HDU 1]: cutout is 64x40; cutouts must be square")
    fits.PrimaryHDU(_cube(14)[:4]).writeto(cut / "14.fits")
    expect[14] = ("bad_shape", "14.fits [HDU 0]: cube has shape (4, 64, 64); expected (5, H, W)")
    nan = _cube(15)
    nan[3, 40, 41] = np.nan
    _mef(cut / "15.fits", nan)
    expect[15] = ("non_finite", "15.fits [HDU 4]: 1 NaN/inf pixel(s), first at (y=40, x=41)")
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"flux": [1.0, 2.0]}))]).writeto(cut / "16.fits")
    expect[16] = ("non_numeric", "16.fits [HDU 1]: holds a BinTableHDU, not image data")
    (cut / "17.fits").write_bytes(b"SIMPLE  = garbage" + b"\0" * 200)
    expect[17] = ("fits_unreadable", "17.fits: not a readable FITS file")
    _mef(cut / "18.fits", _cube(18), labels=("u", "g", "r", "r", "z"))
    expect[18] = ("bad_band", "18.fits [HDU 4]: HDUs [3, 4] all name band 'r'")
    _bands(cut, 19, _cube(19), skip="i")
    expect[19] = ("missing_band", "19_i.fits: id 19 (table row")
    _bands(cut, 20, _cube(20))
    (cut / "20_g.fits").unlink()
    fits.PrimaryHDU(_cube(20)[1], header=fits.Header({"FILTER": "r"})).writeto(cut / "20_g.fits")
    expect[20] = ("bad_band", "20_g.fits [HDU 0]: file is named for band 'g' but its header says 'r'")
    _mef(cut / "21.fits", _cube(21))  # fine file, but its magnitudes are sentinels
    expect[21] = ("bad_magnitude", "row 14 (id 21) magnitudes")
    _mef(cut / "22.fits", _cube(22))  # fine file, position out of range
    expect[22] = ("bad_position", "row 15 (id 22) position ra=400.0")
    expect[23] = ("missing_file", "id 23 (table row 16): no 23.fits or 23_<band>.fits")  # a row without its file
    _mef(cut / "24.fits", _cube(24))  # two rows share id 24
    expect[24] = ("duplicate_id", "object id 24 occurs in 2 rows [17, 18]")
    _mef(cut / "999.fits", _cube(999))  # a cutout no row names
    expect[999] = ("no_table_row", "999.fits: no row of")
    ids = good + list(range(10, 24)) + [24, 24]
    cols = _table_cols(ids)
    cols["mag_g"][ids.index(21)] = 99.0
    cols["ra"][ids.index(22)] = 400.0
    return expect, cols


def test_every_malformed_object_is_rejected_by_name_and_nothing_is_lost(tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    expect, cols = _bad_inputs(cut)
    table = _write_table(tmp_path / "objects.parquet", cols)
    result, shards, manifest = _partition(tmp_path, [cut], table)
    assert np.concatenate([s.object_ids for s in shards]).tolist() == [0, 1, 2]
    assert manifest["rejected"] == result.rejected
    by_id: dict[int, list[dict]] = {}
    for r in result.rejected:
        assert set(r) == {"id", "file", "code", "reason"}
        by_id.setdefault(r["id"], []).append(r)
    assert sorted(by_id) == sorted(expect)  # every input object: predicted or listed
    assert len(by_id[24]) == 2  # both rows of the duplicate id
    for oid, (code, text) in expect.items():
        for r in by_id[oid]:
            assert r["code"] == code, (oid, r)
            assert text in r["reason"], (oid, r["reason"])


def test_cli_lists_rejections_and_exits_0_when_something_was_usable(tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    expect, cols = _bad_inputs(cut)
    table = _write_table(tmp_path / "objects.fits", cols)
    rc = main(["partition", "--from-fits", str(cut), "--table", str(table), "--out", str(tmp_path / "o"), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0
    doc = json.loads(out)
    assert doc["objects"] == 3 and len(doc["rejected"]) == len(expect) + 1
    assert f"partition: {len(expect) + 1} object(s) rejected" in err and "[non_finite]" in err


def test_nothing_usable_exits_2_with_the_reasons(tmp_path: Path, capsys) -> None:
    cut = tmp_path / "cut"
    cut.mkdir()
    fits.PrimaryHDU(_cube(1, 16)).writeto(cut / "1.fits")
    table = _write_table(tmp_path / "t.csv", _table_cols([1, 2]))
    with pytest.raises(PartitionError, match="no usable objects .* all 2 rejected") as err:
        write_partition(FitsSource([cut], table), str(tmp_path / "o"), 1.0, progress=False)
    assert {r["code"] for r in err.value.rejected} == {"bad_shape", "missing_file"}
    rc = main(["partition", "--from-fits", str(cut), "--table", str(table), "--out", str(tmp_path / "o"), "--quiet"])
    assert rc == 2 and "[bad_shape]" in capsys.readouterr().err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_cli_argument_errors(tmp_path: Path, capsys) -> None:
    assert main(["partition", "--from-fits", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "needs --table" in capsys.readouterr().err
    assert main(["partition", "--out", str(tmp_path / "o")]) == 2
    assert "nothing to partition" in capsys.readouterr().err
    table = _write_table(tmp_path / "t.csv", {"object_id": [1]})
    assert main(["partition", "--from-fits", str(tmp_path), "--table", str(table), "--out", str(tmp_path / "o")]) == 2
    assert "no magnitude columns" in capsys.readouterr().err


def test_errors_are_shard_errors_with_codes() -> None:
    from cosmicai.shards import ShardError

    classes = [
        FitsTableError,
        FitsMissingBandError,
        FitsBandError,
        FitsShapeError,
        FitsNonNumericError,
        FitsNonFiniteError,
        FitsUnreadableError,
    ]
    assert all(issubclass(c, ShardError) for c in classes)
    assert len({c.code for c in classes}) == len(classes)
    e = FitsShapeError("a.fits", "too small", hdu=3)
    assert str(e) == "a.fits [HDU 3]: too small" and e.file == "a.fits" and e.hdu == 3


# ------------------------------------------------------------------ make-dataset --fits


@pytest.mark.parametrize("layout, table_format", [("mef", "fits"), ("cube", "csv"), ("bands", "parquet")])
def test_make_dataset_fits_partitions_to_the_same_objects_as_make_dataset(
    tmp_path: Path, layout: str, table_format: str
) -> None:
    pytest.importorskip("galsim")
    from cosmicai.data.generate import make_dataset

    assert (
        main(
            [
                "make-dataset",
                "--fits",
                "--n",
                "7",
                "--seed",
                "4",
                "--out",
                str(tmp_path / "f"),
                "--fits-layout",
                layout,
                "--table-format",
                table_format,
                "--quiet",
            ]
        )
        == 0
    )
    table = tmp_path / "f" / f"objects.{table_format}"
    assert (
        main(
            [
                "partition",
                "--from-fits",
                str(tmp_path / "f" / "cutouts"),
                "--table",
                str(table),
                "--out",
                str(tmp_path / "s"),
                "--quiet",
            ]
        )
        == 0
    )
    make_dataset(7, 4, tmp_path / "ref", progress=False)
    ref = read_shard(tmp_path / "ref" / "part-00000.safetensors")
    got = read_shard(tmp_path / "s" / "part-00000.safetensors")
    np.testing.assert_array_equal(got.object_ids, ref.object_ids)
    np.testing.assert_array_equal(got.images, ref.images)
    np.testing.assert_array_equal(got.magnitudes, ref.magnitudes)
    np.testing.assert_array_equal(got.redshift, ref.redshift)
    assert got.has_position and (got.ra >= 0).all() and (np.abs(got.dec) <= 90).all()


# ------------------------------------------------------------------ export


def _run_dir(tmp_path: Path, z_true: bool = True, pos: bool = True) -> Path:
    from cosmicai.catalog import write_catalog

    run = tmp_path / "runs" / "run-x"
    ids = np.array([3, 1, 2], dtype=np.int64)
    zt = np.array([0.1, np.nan, 0.3], dtype=np.float32) if z_true else None
    kw = {"ra": np.array([359.123456789012, 0.5, 12.0]), "dec": np.array([-89.9, 0.0, 45.000000001])} if pos else {}
    write_catalog(run / "catalog.parquet", ids, np.array([0.11, 0.22, 0.33], np.float32), zt, **kw)
    (run / "summary.json").write_text(json.dumps({"run_id": "run-x"}))
    return run


def test_export_fits_has_units_descriptions_and_every_value(tmp_path: Path, capsys) -> None:
    run = _run_dir(tmp_path)
    assert main(["export", str(run), "--format", "fits"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["out"] == str(run / "catalog.fits") and doc["columns"] == ["object_id", "z_pred", "z_true", "ra", "dec"]
    t = Table.read(run / "catalog.fits")
    assert (
        t["object_id"].tolist() == [3, 1, 2] and t["object_id"].dtype.kind == "i" and t["object_id"].dtype.itemsize == 8
    )
    np.testing.assert_array_equal(t["z_pred"], np.float32([0.11, 0.22, 0.33]))
    assert t["z_true"].mask.tolist() == [False, True, False]
    np.testing.assert_array_equal(t["ra"], [359.123456789012, 0.5, 12.0])
    assert str(t["ra"].unit) == "deg" and str(t["dec"].unit) == "deg"
    assert "predicted by AstroMAE" in t["z_pred"].description and "declination" in t["dec"].description
    header = fits.getheader(run / "catalog.fits", 1)
    assert header["EXTNAME"] == "CATALOG" and header["RUN_ID"] == "run-x"
    assert header["TCOMM2"].startswith("photometric redshift") and header["TUNIT4"] == "deg"


def test_export_csv_and_parquet(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    assert main(["export", str(run), "--format", "csv", "--out", str(tmp_path / "c.csv")]) == 0
    t = Table.read(tmp_path / "c.csv", format="ascii.ecsv")
    assert t["object_id"].tolist() == [3, 1, 2] and str(t["dec"].unit) == "deg" and t["z_true"].mask[1]
    assert t["z_pred"].unit.is_equivalent("") and t["ra"].description.startswith("right ascension")
    assert main(["export", str(run), "--format", "parquet"]) == 0
    p = pq.read_table(run / "catalog.export.parquet")
    assert p.column("z_true").null_count == 1 and p.column("ra").to_pylist()[0] == 359.123456789012
    field = p.schema.field("ra")
    assert field.metadata[b"unit"] == b"deg" and b"right ascension" in field.metadata[b"description"]
    assert b"table_meta_yaml" in p.schema.metadata


def test_export_leaves_out_unknown_columns(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, z_true=False, pos=False)
    from cosmicai.export import export_catalog

    assert export_catalog(run, "fits")["columns"] == ["object_id", "z_pred"]
    assert Table.read(run / "catalog.fits").colnames == ["object_id", "z_pred"]


def test_export_refusals(tmp_path: Path, capsys) -> None:
    run = _run_dir(tmp_path)
    assert main(["export", str(run)]) == 0
    before = (run / "catalog.fits").read_bytes()
    assert main(["export", str(run)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["export", str(run), "--force"]) == 0 and (run / "catalog.fits").read_bytes() == before
    assert main(["export", str(run), "--format", "parquet", "--out", str(run / "catalog.parquet"), "--force"]) == 2
    assert "is the run's catalog itself" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["export", str(tmp_path / "empty")]) == 2
    assert "no merged catalog" in capsys.readouterr().err


# ------------------------------------------------------------------ the round trip (issue 17's done-when)


class _TinyEngine:
    """A deterministic predictor so the round trip needs no weights."""

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        return (0.01 * magnitudes.sum(axis=1) + 1e-4 * images.mean(axis=(1, 2, 3)) - 0.5).astype(np.float32)


def _round_trip(tmp_path: Path) -> tuple[Table, Table, dict]:
    """make-dataset --fits -> partition --from-fits -> Init/Infer/Summarize on the S3 double ->
    the merged catalog invoke downloads -> export --format fits -> astropy."""
    pytest.importorskip("galsim")
    from cosmicai.payload import RunPayload
    from cosmicai.plan import prepare_run
    from cosmicai.report import fetch_run
    from cosmicai.runstore import RunLocation
    from cosmicai.summary import summarize_run
    from cosmicai.worker import WorkItem, run_item
    from fanout_s3 import MemoryS3

    data = tmp_path / "data"
    assert main(["make-dataset", "--fits", "--n", "23", "--seed", "5", "--out", str(data), "--quiet"]) == 0
    objects = Table.read(data / "objects.fits")
    # a few unlabelled objects too, so both kinds of shard go through
    objects["redshift"][[4, 17]] = np.nan
    objects.write(data / "objects.fits", overwrite=True)
    assert (
        main(
            [
                "partition",
                "--from-fits",
                str(data / "cutouts"),
                "--table",
                str(data / "objects.fits"),
                "--out",
                str(tmp_path / "shards"),
                "--target-mb",
                "0.1",
                "--quiet",
            ]
        )
        == 0
    )

    s3 = MemoryS3("data-bucket", "out-bucket")
    for p in sorted((tmp_path / "shards").iterdir()):
        s3.put_object(Bucket="data-bucket", Key=f"in/{p.name}", Body=p.read_bytes())
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "workers": 2, "run_id": "fits-rt"}
    )
    prepare_run(s3, payload, started_at=1000.0)
    for n, item in enumerate(json.loads(s3.buckets["out-bucket"]["r/plan.json"])):
        run_item(
            WorkItem.parse(item), s3, _TinyEngine, cold_start=n == 0, init_seconds=0.1, context={"memory_mb": 2048}
        )
    summary = summarize_run(s3, RunLocation("out-bucket", "r/"), "fits-rt", now=1005.0)
    run_dir = tmp_path / "runs" / "fits-rt"
    fetch_run(s3, RunLocation("out-bucket", "r/"), run_dir, "fits-rt")
    assert main(["export", str(run_dir), "--format", "fits"]) == 0
    merged = pq.read_table(run_dir / "catalog.parquet")
    return objects, Table.read(run_dir / "catalog.fits"), {"summary": summary, "merged": merged}


def test_fits_round_trip_keeps_every_object_id_and_value(tmp_path: Path) -> None:
    objects, exported, extra = _round_trip(tmp_path)
    summary, merged = extra["summary"], extra["merged"]
    assert summary["status"] == "SUCCEEDED" and summary["objects"]["predicted"] == len(objects) == 23
    assert summary["objects"]["labelled"] == 21
    # every object, once, with its id
    assert sorted(exported["object_id"].tolist()) == sorted(objects["object_id"].tolist())
    assert exported["object_id"].tolist() == merged.column("object_id").to_pylist()
    # z values equal to the catalog's, bit for bit
    np.testing.assert_array_equal(np.asarray(exported["z_pred"]), merged.column("z_pred").to_numpy())
    by_id = {int(i): k for k, i in enumerate(objects["object_id"])}
    rows = [by_id[int(i)] for i in exported["object_id"]]
    truth = np.asarray(objects["redshift"], dtype=np.float32)[rows]
    np.testing.assert_array_equal(exported["z_true"].mask, np.isnan(truth))
    np.testing.assert_array_equal(exported["z_true"].filled(np.nan), truth)
    # and the predictions are the engine's on the table's magnitudes (nothing shuffled)
    mags = np.stack([np.asarray(objects[f"mag_{b}"], dtype=np.float32) for b in BANDS], axis=1)[rows]
    assert np.abs(np.asarray(exported["z_pred"]) - (0.01 * mags.sum(axis=1) - 0.5)).max() < 1e-2


def test_fits_round_trip_keeps_positions(tmp_path: Path) -> None:
    objects, exported, _ = _round_trip(tmp_path)
    by_id = {int(i): k for k, i in enumerate(objects["object_id"])}
    rows = [by_id[int(i)] for i in exported["object_id"]]
    assert "ra" in exported.colnames and str(exported["ra"].unit) == "deg"
    np.testing.assert_array_equal(np.asarray(exported["ra"]), np.asarray(objects["ra"])[rows])
    np.testing.assert_array_equal(np.asarray(exported["dec"]), np.asarray(objects["dec"])[rows])


def test_positions_travel_from_shards_through_catalog_to_export(tmp_path: Path) -> None:
    """The half of the position path that is in place: shard ra/dec -> catalog -> merged -> FITS."""
    from cosmicai.catalog import write_catalog
    from cosmicai.export import export_catalog

    cut = tmp_path / "cut"
    cut.mkdir()
    ids = [5, 6, 7]
    for i in ids:
        fits.PrimaryHDU(_cube(i, 32)).writeto(cut / f"{i}.fits")
    _, shards, _ = _partition(tmp_path, [cut], _write_table(tmp_path / "t.fits", _table_cols(ids)))
    s = shards[0]
    write_catalog(tmp_path / "run" / "catalog.parquet", s.object_ids, s.redshift + 0.01, s.redshift, ra=s.ra, dec=s.dec)
    export_catalog(tmp_path / "run", "fits")
    t = Table.read(tmp_path / "run" / "catalog.fits")
    want = _table_cols(ids)
    assert t["object_id"].tolist() == ids
    np.testing.assert_array_equal(np.asarray(t["ra"]), want["ra"])
    np.testing.assert_array_equal(np.asarray(t["dec"]), want["dec"])
