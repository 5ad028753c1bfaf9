"""Per-object uncertainty tta8: the 8 views, their aggregation and calibration, the model card, the
worker's catalogs and metric partials, coverage merged exactly, the payload, predict, export, dry run."""

from __future__ import annotations

import hashlib
import json
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from cosmicai.catalog import UNCERTAINTY_COLUMNS, CatalogError, catalog_provenance, catalog_to_bytes, read_catalog
from cosmicai.metrics import (
    MetricAccumulator,
    MetricPartial,
    PartialFormatError,
    ShardPartial,
    partials_from_bytes,
    partials_to_bytes,
)
from cosmicai.payload import PayloadError, RunPayload
from cosmicai.shards import shard_to_bytes
from cosmicai.uncertainty import (
    COVERAGE_TARGET,
    VIEWS,
    Tta8Calibration,
    Tta8Predictor,
    UncertaintyError,
    UncertaintyNotCalibratedError,
    aggregate,
    calibrate_scale,
    calibration_for,
    card_calibration,
    cost_factor,
    dihedral_views,
    predict_views,
)
from cosmicai.worker import WorkItem, run_item
from fanout_s3 import MemoryS3
from tests.conftest import build_shard, demo_weights_missing

SECTION = {
    "scale": 2.5,
    "target_coverage": COVERAGE_TARGET,
    "calibration": {"split": "val", "objects": 10},
    "heldout": {"split": "test", "objects": 10, "coverage_68": 0.7},
    "cost_factor": 7.9,
}


class _OrientedEngine:
    """Predicts from the first image row, so the 8 views of an object disagree (as a real model's do)."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        self.calls.append(int(images.shape[0]))
        return (0.01 * magnitudes.sum(axis=1) - 0.5 + 0.2 * images[:, :, 0, :].mean(axis=(1, 2))).astype(np.float32)


# --------------------------------------------------------------------------- the views


def test_views_are_the_8_distinct_dihedral_transforms_in_the_training_order() -> None:
    import torch

    x = np.random.default_rng(0).normal(size=(3, 5, 6, 6)).astype(np.float32)
    views = dihedral_views(x)
    assert views.shape == (VIEWS, 3, 5, 6, 6)
    t = torch.from_numpy(x)
    for k in range(VIEWS):  # cosmicai.data.train's augmentation: rot90 by k % 4, mirrored if k >= 4
        want = torch.rot90(t, k % 4, dims=(2, 3))
        want = torch.flip(want, dims=(3,)) if k >= 4 else want
        np.testing.assert_array_equal(views[k], want.numpy())
    np.testing.assert_array_equal(views[0], x)
    flat = {views[k, 0].tobytes() for k in range(VIEWS)}
    assert len(flat) == VIEWS  # all distinct
    # a group: the views of any view are the same 8 images
    assert {v.tobytes() for v in dihedral_views(views[5])[:, 0]} == flat
    with pytest.raises(UncertaintyError, match="shape"):
        dihedral_views(np.zeros((2, 5, 4, 6)))


def test_views_go_through_the_engine_in_calls_of_at_most_its_batch_of_images() -> None:
    shard = build_shard(10, seed=1)
    engine = _OrientedEngine()
    got = predict_views(engine, shard.images, shard.magnitudes, images_per_call=32)
    assert engine.calls == [32, 32, 16]  # 4 objects (32 images) a call, then the last 2
    separate = np.stack(
        [engine.predict(np.ascontiguousarray(v), shard.magnitudes) for v in dihedral_views(shard.images)]
    )
    np.testing.assert_array_equal(got, separate)


@pytest.mark.skipif(bool(demo_weights_missing()), reason=demo_weights_missing() or "weights present")
def test_z_pred_is_the_mean_of_8_separate_predictions_with_the_real_engine() -> None:
    from cosmicai.engine import Engine

    shard = build_shard(6, seed=2)
    engine = Engine.from_weights(threads=1, batch_size=16)
    got = Tta8Predictor(engine, Tta8Calibration.model_validate(SECTION), images_per_call=16).predict(
        shard.images, shard.magnitudes
    )
    each = np.stack([engine.predict(v, shard.magnitudes) for v in dihedral_views(shard.images)]).astype(np.float64)
    np.testing.assert_allclose(got.z_pred, each.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(got.z_err, 2.5 * each.std(axis=0), atol=1e-6)
    assert (got.z_err > 0).all()


def test_aggregate_mean_scaled_spread_and_percentiles() -> None:
    views = np.array([[0.1, 0.5], [0.2, 0.5], [0.3, 0.5], [0.4, 0.5], [0.5, 0.5], [0.6, 0.5], [0.7, 0.5], [0.8, 0.5]])
    got = aggregate(views, 2.0)
    np.testing.assert_allclose(got.z_pred, [0.45, 0.5], atol=1e-7)
    np.testing.assert_allclose(got.z_err, [2.0 * np.std(views[:, 0]), 0.0], atol=1e-7)
    p16, p84 = np.percentile(views[:, 0], [16, 84])
    np.testing.assert_allclose(
        [got.z_p16[0], got.z_p84[0]], [0.45 + 2 * (p16 - 0.45), 0.45 + 2 * (p84 - 0.45)], atol=1e-6
    )
    assert got.z_p16[1] == got.z_p84[1] == np.float32(0.5)
    assert set(got.columns()) == set(UNCERTAINTY_COLUMNS)
    with pytest.raises(UncertaintyError, match="scale"):
        aggregate(views, 0.0)
    with pytest.raises(UncertaintyError, match="shape"):
        aggregate(views[:7], 1.0)


def test_calibrated_scale_is_the_smallest_reaching_the_target_coverage() -> None:
    rng = np.random.default_rng(3)
    views = rng.normal(0.3, 0.01, (VIEWS, 1000))
    mean, sd = views.mean(axis=0), views.std(axis=0)
    z_true = mean + rng.normal(0.0, 0.03, 1000)
    scale = calibrate_scale(z_true, views)
    hits = np.abs(z_true - mean) <= scale * sd
    assert hits.mean() >= COVERAGE_TARGET
    assert (np.abs(z_true - mean) <= scale * (1 - 1e-9) * sd).mean() < COVERAGE_TARGET
    with pytest.raises(UncertaintyError, match="true redshifts"):
        calibrate_scale(z_true[:5], views)


# --------------------------------------------------------------------------- the model card


def _weights_with_card(folder: Path, section: dict[str, Any] | None) -> Path:
    weights = folder / "w.safetensors"
    weights.write_bytes(b"not really weights " + folder.name.encode())
    card = {"weights_name": "w.safetensors", "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    if section is not None:
        card["uncertainty"] = {"tta8": section}
    (folder / "MODEL_CARD.json").write_text(json.dumps(card))
    return weights


def test_calibration_comes_from_the_card_that_records_the_weights(tmp_path: Path) -> None:
    assert calibration_for(_weights_with_card(tmp_path, SECTION)).scale == 2.5
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(UncertaintyNotCalibratedError, match="MODEL_CARD.json has none") as exc:
        calibration_for(_weights_with_card(bare, None))
    assert "cosmicai calibrate-uncertainty" in str(exc.value) and exc.value.code == "uncertainty_uncalibrated"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "w.safetensors").write_bytes(b"other weights")
    with pytest.raises(UncertaintyNotCalibratedError, match="records their sha256"):
        calibration_for(stranger / "w.safetensors")
    with pytest.raises(UncertaintyNotCalibratedError, match=r"uncertainty.tta8.scale"):
        card_calibration({"uncertainty": {"tta8": SECTION | {"scale": -1}}}, "card.json")


def test_cost_factor_none_is_1_and_tta8_about_8() -> None:
    assert cost_factor("none")[0] == 1.0
    factor, source = cost_factor("tta8")
    assert 6.0 < factor < 10.0 and source
    with pytest.raises(UncertaintyError, match="tta16"):
        cost_factor("tta16")


@pytest.mark.skipif(bool(demo_weights_missing()), reason=demo_weights_missing() or "weights present")
def test_the_packaged_demo_weights_are_calibrated_within_the_bounds() -> None:
    """Issue 17's done-when, as recorded by `cosmicai calibrate-uncertainty` in the packaged card."""
    from cosmicai.weightsfile import default_weights_path

    cal = calibration_for(default_weights_path())
    assert 0.60 <= cal.heldout["coverage_68"] <= 0.76 and cal.heldout["objects"] >= 1000
    assert cal.calibration["split"] != cal.heldout["split"]
    assert cal.cost_factor is not None and 6.0 < cal.cost_factor < 10.0


def test_record_in_card_writes_the_section_and_the_markdown(tmp_path: Path) -> None:
    from cosmicai.calibration import LabelledSplit, calibrate_tta8, record_in_card

    shard = build_shard(40, seed=4)
    split = LabelledSplit("s", shard.images, shard.magnitudes, shard.redshift)
    cost = {
        "cost_factor": 8.1,
        "factor_wall": 8.2,
        "objects": 40,
        "batch_size": 64,
        "threads": 1,
        "backend": "torch",
        "precision": "fp32",
        "rounds": 1,
    }
    engine = _OrientedEngine()
    engine.batch_size = 64  # type: ignore[attr-defined]
    section = calibrate_tta8(engine, split, split, cost=cost, command="cosmicai calibrate-uncertainty ...")
    assert section.calibration["coverage_68"] >= COVERAGE_TARGET and section.heldout["objects"] == 40
    card = tmp_path / "MODEL_CARD.json"
    info = json.loads(Path("handlers/cosmicai/assets/MODEL_CARD.json").read_text())
    info.pop("uncertainty", None)
    card.write_text(json.dumps(info))
    md = record_in_card(card, section)
    assert json.loads(card.read_text())["uncertainty"]["tta8"]["scale"] == section.scale
    text = md.read_text()
    assert "## Uncertainty (tta8)" in text and "8.10x the compute" in text and "## Metrics" in text


# --------------------------------------------------------------------------- catalogs, partials, payload


def test_catalog_has_the_uncertainty_columns_only_with_tta8() -> None:
    ids, z = np.arange(4), np.float32([0.1, 0.2, 0.3, 0.4])
    errors = {"z_err": z / 10, "z_p16": z - 0.01, "z_p84": z + 0.01}
    plain = read_catalog(catalog_to_bytes(ids, z, z))
    assert not set(UNCERTAINTY_COLUMNS) & set(plain.column_names)
    for fmt in ("parquet", "csv"):
        table = read_catalog(catalog_to_bytes(ids, z, z, fmt, uncertainty=errors))
        assert table.column_names[-3:] == list(UNCERTAINTY_COLUMNS)
        np.testing.assert_array_equal(table.column("z_err").to_numpy(), errors["z_err"])
    with pytest.raises(CatalogError, match="uncertainty columns"):
        catalog_to_bytes(ids, z, uncertainty={"z_err": z})
    with pytest.raises(CatalogError, match="z_p84"):
        catalog_to_bytes(ids, z, uncertainty=errors | {"z_p84": z[:3]})
    half = read_catalog(catalog_to_bytes(ids, z, z, uncertainty=errors)).drop_columns(["z_p16"])
    buf = BytesIO()
    pq.write_table(half, buf)
    with pytest.raises(CatalogError, match="z_p16"):
        read_catalog(buf.getvalue())


def test_coverage_merges_exactly_across_partials_and_files() -> None:
    rng = np.random.default_rng(5)
    t = rng.uniform(0.01, 0.5, 3000)
    p = t + rng.normal(0, 0.02, 3000)
    e = np.abs(rng.normal(0, 0.02, 3000))
    exact_hits = int(np.count_nonzero(np.abs(t - p) <= e))
    sections = [ShardPartial(f"s{i}", 1000, MetricPartial.from_pairs(t[i::3], p[i::3], e[i::3])) for i in range(3)]
    doc = partials_from_bytes(partials_to_bytes("r", "i", sections))
    left, right = MetricAccumulator(), MetricAccumulator()
    for k, sec in enumerate(doc.shards.values()):
        (left if k == 0 else right).add(sec.partial)
    merged, _ = left.merge(right).compute_with_rail()
    assert merged["coverage_68_n"] == 3000 and merged["coverage_68"] == exact_hits / 3000
    assert left.compute()["coverage_68"] == exact_hits / 3000
    none = MetricAccumulator().add(MetricPartial.from_pairs(t, p))
    assert "coverage_68" not in none.compute_with_rail()[0]
    assert b"with_err" not in partials_to_bytes("r", "i", [ShardPartial("s", 3000, MetricPartial.from_pairs(t, p))])
    bad = json.loads(partials_to_bytes("r", "i", sections[:1]))
    bad["shards"][0]["covered"] = bad["shards"][0]["with_err"] + 1
    with pytest.raises(PartialFormatError, match="covered"):
        partials_from_bytes(json.dumps(bad).encode())


def test_payload_uncertainty_is_none_or_tta8_and_reaches_the_plan() -> None:
    from cosmicai.plan import ShardInfo, plan_work_items

    base = {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/"}
    assert RunPayload.parse(base).uncertainty == "none"
    payload = RunPayload.parse(base | {"uncertainty": "tta8", "run_id": "r1"})
    items = plan_work_items(payload, [ShardInfo("in/a.safetensors", "a", 10, 4)])
    assert items[0].wire()["uncertainty"] == "tta8" and WorkItem.parse(items[0].wire()).uncertainty == "tta8"
    for bad in ("tta16", True, None):
        with pytest.raises(PayloadError, match="payload.uncertainty") as exc:
            RunPayload.parse(base | {"uncertainty": bad})
        assert "'none' or 'tta8'" in exc.value.problem


# --------------------------------------------------------------------------- the worker


def _item(uncertainty: str) -> WorkItem:
    return WorkItem.parse(
        {
            "item_id": "item-0",
            "run_id": "r",
            "input_bucket": "data-bucket",
            "output": "s3://out-bucket/r/",
            "batch_size": 16,
            "precision": "fp32",
            "uncertainty": uncertainty,
            "shards": [{"key": "in/a.safetensors", "name": "a", "bytes": 10, "count": 9}],
        }
    )


@pytest.fixture
def store() -> MemoryS3:
    s3 = MemoryS3("data-bucket", "out-bucket")
    s3.put_object(Bucket="data-bucket", Key="in/a.safetensors", Body=shard_to_bytes(build_shard(9, seed=6)))
    return s3


def test_worker_writes_errors_coverage_and_provenance_with_tta8(
    store: MemoryS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSMICAI_WEIGHTS", str(_weights_with_card(tmp_path, SECTION)))
    report = run_item(_item("tta8"), store, _OrientedEngine, cold_start=False, init_seconds=0.0).wire()
    assert report["status"] == "succeeded" and report["provenance"]["uncertainty"] == "tta8"
    body = store.buckets["out-bucket"]["r/predictions/a.parquet"]
    table = read_catalog(body)
    assert table.column_names[-3:] == list(UNCERTAINTY_COLUMNS)
    assert catalog_provenance(body)["uncertainty"] == "tta8"
    shard = build_shard(9, seed=6)
    z_err = table.column("z_err").to_numpy()
    hits = int(np.count_nonzero(np.abs(shard.redshift.astype(np.float64) - table.column("z_pred").to_numpy()) <= z_err))
    partial = next(
        iter(partials_from_bytes(store.buckets["out-bucket"]["r/metrics/item-0.json"]).shards.values())
    ).partial
    assert (partial.with_err, partial.covered) == (9, hits)


def test_worker_without_uncertainty_writes_no_error_columns(store: MemoryS3) -> None:
    report = run_item(_item("none"), store, _OrientedEngine, cold_start=False, init_seconds=0.0).wire()
    assert report["provenance"]["uncertainty"] == "none"
    assert not set(UNCERTAINTY_COLUMNS) & set(
        read_catalog(store.buckets["out-bucket"]["r/predictions/a.parquet"]).column_names
    )


def test_worker_fails_by_name_when_the_weights_are_not_calibrated(
    store: MemoryS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSMICAI_WEIGHTS", str(_weights_with_card(tmp_path, None)))
    with pytest.raises(UncertaintyNotCalibratedError, match="calibrate-uncertainty"):
        run_item(_item("tta8"), store, _OrientedEngine, cold_start=False, init_seconds=0.0)
    assert not [k for k in store.buckets["out-bucket"] if "predictions/" in k]  # failed before any shard


# --------------------------------------------------------------------------- predict, export, dry run


@pytest.mark.skipif(bool(demo_weights_missing()), reason=demo_weights_missing() or "weights present")
def test_predict_uncertainty_tta8_writes_the_columns_and_prints_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cosmicai import cli
    from cosmicai.shards import write_shard

    src = tmp_path / "s.safetensors"
    write_shard(build_shard(12, seed=7), src)
    out = tmp_path / "c.parquet"
    assert (
        cli.main(
            [
                "predict",
                "--input",
                str(src),
                "--output",
                str(out),
                "--uncertainty",
                "tta8",
                "--threads",
                "1",
                "--batch-size",
                "32",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "coverage_68=" in text and "uncertainty tta8" in text
    table = read_catalog(out)
    assert table.num_rows == 12 and (table.column("z_err").to_numpy() > 0).all()
    assert (table.column("z_p16").to_numpy() <= table.column("z_p84").to_numpy()).all()


def test_export_carries_the_uncertainty_columns_with_descriptions(tmp_path: Path) -> None:
    from astropy.table import Table

    from cosmicai.export import export_catalog

    z = np.float32([0.1, 0.2])
    (tmp_path / "catalog.parquet").write_bytes(
        catalog_to_bytes(np.arange(2), z, z, uncertainty={"z_err": z / 10, "z_p16": z - 0.01, "z_p84": z + 0.01})
    )
    got = export_catalog(tmp_path, "fits")
    assert got["columns"][-3:] == list(UNCERTAINTY_COLUMNS)
    t = Table.read(got["out"])
    assert "1-sigma" in t["z_err"].description and "84th" in t["z_p84"].description
    np.testing.assert_allclose(t["z_p84"], z + 0.01)


def test_dry_run_states_the_tta8_factor_and_divides_the_throughput() -> None:
    from cosmicai.commands.invoke import Concurrency, Throughput, dry_run_rows
    from cosmicai.plan import RunPlan, ShardInfo, plan_work_items

    def rows(uncertainty: str) -> dict[str, str]:
        payload = RunPayload.parse(
            {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": "r", "uncertainty": uncertainty}
        )
        shards = [ShardInfo("in/a.safetensors", "a", 10**10, 500_000)]
        planned = RunPlan(payload=payload, shards=shards, items=plan_work_items(payload, shards), warnings=[])
        return dict(
            dry_run_rows(
                planned,
                Throughput({1: 400.0}, 1.0, "test figures"),
                (1769.0, "x86_64", "defaults"),
                Concurrency(needed=1, items=1, max_concurrency=100),
            )
        )

    plain, tta = rows("none"), rows("tta8")
    factor = cost_factor("tta8")[0]
    assert plain["uncertainty"] == "none" and f"{factor:.2f}x the compute" in tta["uncertainty"]
    assert tta["throughput"].startswith(f"{400 / factor:.0f} objects/s") and plain["throughput"].startswith(
        "400 objects/s"
    )
    assert float(tta["projected USD (run)"]) > 5 * float(plain["projected USD (run)"])


def test_summarize_reads_coverage_from_a_tta8_catalog_when_a_partial_is_missing() -> None:
    from cosmicai.contracts import ShardOutcome
    from cosmicai.runstore import RunLocation
    from cosmicai.summary import _catalog_partial

    s3 = MemoryS3("out-bucket")
    z = np.float32([0.1, 0.2, 0.3])
    body = catalog_to_bytes(
        np.arange(3), z + 0.01, z, uncertainty={"z_err": np.float32([0.02, 0.0, 0.02]), "z_p16": z, "z_p84": z + 0.02}
    )
    s3.put_object(Bucket="out-bucket", Key="r/predictions/a.parquet", Body=body)
    outcome = ShardOutcome(
        item_id="i", key="in/a", name="a", status="succeeded", objects=3, prediction_key="r/predictions/a.parquet"
    )
    got = _catalog_partial(s3, RunLocation("out-bucket", "r/"), outcome)
    assert (got.partial.with_err, got.partial.covered) == (3, 2)


def test_report_rows_show_the_coverage_only_when_measured() -> None:
    from cosmicai.report import summary_rows

    metrics = {"n": 4, "mae": 0.1, "mse": 0.01, "bias": 0.0, "precision": 0.1, "r2": 0.9, "outlier_fraction": 0.0}
    plain = dict(summary_rows({"metrics": metrics}))
    assert "coverage_68 (z_err)" not in plain
    rows = dict(summary_rows({"metrics": metrics | {"coverage_68": 0.75, "coverage_68_n": 4}}))
    assert rows["coverage_68 (z_err)"] == "0.75 of 4 objects"
