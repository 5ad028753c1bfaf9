"""Per-object catalogs: schema, Parquet and CSV round trips, nullable z_true, errors."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cosmicai.catalog import SCHEMA, CatalogError, catalog_to_bytes, read_catalog, write_catalog

IDS = np.array([10, 11, 12], dtype=np.int64)
PRED = np.array([0.1, 0.25, 0.3333], dtype=np.float32)
TRUE = np.array([0.12, np.nan, 0.3], dtype=np.float32)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_round_trip(tmp_path, fmt):
    path = tmp_path / f"cat.{fmt}"
    nbytes = write_catalog(path, IDS, PRED, TRUE, fmt=fmt)
    assert nbytes == path.stat().st_size > 0
    table = read_catalog(path)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    assert table.column("object_id").to_pylist() == [10, 11, 12]
    np.testing.assert_array_equal(table.column("z_pred").to_numpy(), PRED)
    assert table.column("z_true").to_pylist()[1] is None  # NaN means unknown -> null
    assert table.column("z_true").null_count == 1
    assert table.column("z_true").to_pylist()[0] == pytest.approx(0.12, abs=1e-7)


def test_parquet_is_real_parquet_with_types(tmp_path):
    path = tmp_path / "c.parquet"
    write_catalog(path, IDS, PRED)
    t = pq.read_table(path)
    assert t.schema.field("object_id").type == pa.int64()
    assert t.schema.field("z_pred").type == pa.float32()
    assert t.column("z_true").null_count == 3


def test_csv_text_and_detection_by_content(tmp_path):
    data = catalog_to_bytes(IDS, PRED, None, fmt="csv")
    assert data.decode().splitlines()[0].replace('"', "") == "object_id,z_pred,z_true,ra,dec"
    path = tmp_path / "misnamed.parquet"
    path.write_bytes(data)
    assert read_catalog(path).num_rows == 3
    assert read_catalog(catalog_to_bytes(IDS, PRED)).num_rows == 3


def test_write_to_file_object():
    buf = io.BytesIO()
    n = write_catalog(buf, IDS, PRED, TRUE)
    assert n == len(buf.getvalue()) and read_catalog(buf.getvalue()).num_rows == 3


def test_errors(tmp_path):
    with pytest.raises(CatalogError, match="3 object ids but 2 predictions"):
        write_catalog(tmp_path / "x", IDS, PRED[:2])
    with pytest.raises(CatalogError, match="true redshifts"):
        write_catalog(tmp_path / "x", IDS, PRED, TRUE[:1])
    with pytest.raises(CatalogError, match="unknown catalog format 'json'"):
        write_catalog(tmp_path / "x", IDS, PRED, fmt="json")
    with pytest.raises(CatalogError, match="integer"):
        write_catalog(tmp_path / "x", IDS.astype(float), PRED)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(CatalogError, match="bad.csv"):
        read_catalog(bad)
    with pytest.raises(CatalogError, match="cannot read"):
        read_catalog(tmp_path / "missing.parquet")


def test_labelled_and_unlabelled_catalogs_are_one_dataset(tmp_path):
    """Every per-shard catalog carries the same Parquet schema, so `predictions/` reads as one
    pyarrow dataset whatever mix of labelled and unlabelled shards a run had."""
    import pyarrow.dataset as ds

    write_catalog(tmp_path / "a.parquet", IDS, PRED, TRUE)
    write_catalog(tmp_path / "b.parquet", IDS + 100, PRED)  # no labels: z_true all null, still float32
    write_catalog(
        tmp_path / "c.parquet", np.array([200], dtype=np.int64), PRED[:1], np.array([np.nan], dtype=np.float32)
    )
    schemas = [pq.read_schema(tmp_path / f"{n}.parquet") for n in "abc"]
    assert all(s.equals(SCHEMA, check_metadata=True) for s in schemas)
    dataset = ds.dataset(tmp_path, format="parquet")
    assert dataset.schema.equals(SCHEMA)
    table = dataset.to_table()
    assert table.num_rows == 7 and sorted(table.column("object_id").to_pylist()) == [10, 11, 12, 110, 111, 112, 200]
    assert table.column("z_true").null_count == 5


RA = np.array([359.9999999, 0.0, 150.1234567891], dtype=np.float64)
DEC = np.array([-89.5, 0.0, 2.2071234567], dtype=np.float64)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_positions_round_trip_in_float64(tmp_path, fmt):
    path = tmp_path / f"pos.{fmt}"
    write_catalog(path, IDS, PRED, TRUE, fmt=fmt, ra=RA, dec=DEC)
    table = read_catalog(path)
    assert table.schema.equals(SCHEMA, check_metadata=False)
    np.testing.assert_array_equal(table.column("ra").to_numpy(), RA)  # float64: no arcsecond lost
    np.testing.assert_array_equal(table.column("dec").to_numpy(), DEC)


def test_positions_absent_are_null_and_come_in_pairs(tmp_path):
    table = read_catalog(catalog_to_bytes(IDS, PRED, TRUE))
    assert table.column("ra").null_count == table.column("dec").null_count == 3
    with pytest.raises(CatalogError, match="ra and dec come together"):
        catalog_to_bytes(IDS, PRED, ra=RA)
    with pytest.raises(CatalogError, match="2 dec values"):
        catalog_to_bytes(IDS, PRED, ra=RA, dec=DEC[:2])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_catalogs_written_before_positions_still_read(tmp_path, fmt):
    """A catalog of the three original columns (an older run's) reads with null ra/dec."""
    import pyarrow.csv as pacsv

    old = pa.table({"object_id": pa.array(IDS), "z_pred": pa.array(PRED), "z_true": pa.array(TRUE)})
    path = tmp_path / f"old.{fmt}"
    pq.write_table(old, path) if fmt == "parquet" else pacsv.write_csv(old, path)
    table = read_catalog(path)
    assert table.schema.equals(SCHEMA, check_metadata=False) and table.num_rows == 3
    assert table.column("ra").null_count == 3


PROV = {
    "cosmicai_version": "0.1.0",
    "weights_name": "astromae-demo.safetensors",
    "weights_sha256": "ab" * 32,
    "model_card": None,
    "backend": "torch",
    "precision": "int8",
    "uncertainty": "none",
}


def test_provenance_rides_in_parquet_metadata_and_keeps_one_dataset(tmp_path):
    from cosmicai.catalog import catalog_provenance

    body = catalog_to_bytes(IDS, PRED, TRUE, provenance=PROV)
    assert catalog_provenance(body) == PROV
    meta = pq.read_schema(io.BytesIO(body)).metadata
    assert meta[b"cosmicai.weights_sha256"] == b"ab" * 32 and meta[b"cosmicai.model_card"] == b"null"
    assert read_catalog(body).schema.equals(SCHEMA)  # fields unchanged
    (tmp_path / "a.parquet").write_bytes(body)
    write_catalog(tmp_path / "b.parquet", IDS + 100, PRED)  # an older catalog without provenance
    assert catalog_provenance(tmp_path / "b.parquet") == {}
    import pyarrow.dataset as ds

    assert ds.dataset(tmp_path, format="parquet").to_table().num_rows == 6
    assert catalog_provenance(catalog_to_bytes(IDS, PRED, TRUE, "csv", provenance=PROV)) == {}  # CSV has no metadata


def _run_dir(tmp_path, prov: dict | None):
    import json

    run = tmp_path / "run-x"
    write_catalog(run / "catalog.parquet", IDS, PRED, TRUE)
    if prov is not None:
        (run / "summary.json").write_text(json.dumps({"run_id": "run-x", "provenance": prov}))
    return run


def test_export_fits_and_parquet_carry_the_run_provenance(tmp_path, capsys):
    pytest.importorskip("astropy")
    import json

    from astropy.io import fits

    from cosmicai.catalog import catalog_provenance
    from cosmicai.cli import main

    summary_prov = PROV | {
        "model_card": "astromae-demo.safetensors",
        "consistent": True,
        "combinations": [PROV | {"items": 3}],
        "items_unrecorded": 0,
    }
    run = _run_dir(tmp_path, summary_prov)
    assert main(["export", str(run), "--format", "fits"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["weights_sha256"] == "ab" * 32
    with fits.open(run / "catalog.fits") as hdul:
        h = hdul["CATALOG"].header
        assert (h["CAIVERS"], h["WGTSHA"], h["MODLCARD"], h["BACKEND"], h["PRECISN"], h["UNCERT"]) == (
            "0.1.0",
            "ab" * 32,
            "astromae-demo.safetensors",
            "torch",
            "int8",
            "none",
        )
        assert "PROVMIX" not in h and hdul["CATALOG"].data.shape[0] == 3
    assert main(["export", str(run), "--format", "parquet"]) == 0
    got = catalog_provenance(run / "catalog.export.parquet")
    assert got["weights_sha256"] == "ab" * 32 and got["precision"] == "int8"
    assert b"table_meta_yaml" in pq.read_schema(run / "catalog.export.parquet").metadata  # astropy's kept


def test_export_of_a_mixed_run_flags_it_and_without_summary_reads_the_catalog(tmp_path, capsys):
    pytest.importorskip("astropy")
    from astropy.io import fits

    from cosmicai.cli import main

    mixed = PROV | {"precision": None, "consistent": False, "combinations": [PROV | {"items": 1}, PROV | {"items": 1}]}
    run = _run_dir(tmp_path, mixed)
    assert main(["export", str(run), "--format", "fits"]) == 0
    with fits.open(run / "catalog.fits") as hdul:
        h = hdul["CATALOG"].header
        assert h["PROVMIX"] is True and "PRECISN" not in h and h["BACKEND"] == "torch"
    # a catalog file given directly, no summary: its own metadata
    cat = tmp_path / "solo" / "c.parquet"
    cat.parent.mkdir()
    cat.write_bytes(catalog_to_bytes(IDS, PRED, TRUE, provenance=PROV))
    assert main(["export", str(cat), "--format", "fits", "--out", str(tmp_path / "solo.fits")]) == 0
    with fits.open(tmp_path / "solo.fits") as hdul:
        assert hdul["CATALOG"].header["WGTSHA"] == "ab" * 32 and "MODLCARD" not in hdul["CATALOG"].header
