"""The real state machine on LocalStack: a labelled run, exact accounting, reruns, `make invoke`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cosmicai import __version__
from cosmicai.catalog import catalog_provenance
from cosmicai.metrics import compute_metrics
from cosmicai.weights import default_weights_path
from cosmicai.weightsfile import weights_sha256
from itfixtures.pipeline import RunResult, new_test_run_id
from tests.conftest import build_shard, demo_weights_missing
from tests.unit.metric_agreement import assert_metrics_agree

ROOT = Path(__file__).resolve().parents[2]
N_SHARDS = 8
SHARDS = [build_shard(40 + 3 * i, seed=100 + i, id_start=1000 * i) for i in range(N_SHARDS)]
TOTAL = sum(s.n for s in SHARDS)


# The local functions load the packaged demo weights; checked before anything is deployed.
pytestmark = pytest.mark.skipif(bool(demo_weights_missing()), reason=demo_weights_missing() or "weights present")


@pytest.fixture(scope="module")
def labelled_input(upload_shards) -> str:
    return upload_shards(SHARDS)


@pytest.fixture(scope="module")
def happy(run_pipeline, labelled_input: str) -> RunResult:
    return run_pipeline({"input": labelled_input, "shards_per_worker": 2, "batch_size": 32, "max_concurrency": 4})


def _merged(result: RunResult) -> pa.Table:
    return pa.concat_tables([result.catalog(k) for k in result.prediction_keys()])


def _assert_metrics_from_partials(summary: dict, table: pa.Table) -> None:
    """Summarize's metrics, merged from the workers' partials only, agree with exact ones over the catalogs."""
    z_true = table.column("z_true").to_numpy(zero_copy_only=False)
    z_pred = table.column("z_pred").to_numpy(zero_copy_only=False)
    # metrics.rail against qp's RAIL classes within 1e-5 (issue 17's done-when), on every end-to-end run
    assert_metrics_agree(summary["metrics"], compute_metrics(z_true, z_pred), (z_true, z_pred))
    src = summary["metrics_source"]
    assert src["shards"] == summary["shards"]["succeeded"] and src["shards_from_catalogs"] == 0, src
    assert src["error_bounds"]["delta"] < 1e-6


def test_run_succeeds_and_accounts_for_every_object(happy: RunResult) -> None:
    assert happy.status == "SUCCEEDED", (happy.error, happy.cause)
    s = happy.summary
    assert s is not None and s["status"] == "SUCCEEDED"
    assert s["objects"] == {"total": TOTAL, "predicted": TOTAL, "failed": 0, "labelled": TOTAL}
    assert s["shards"]["total"] == N_SHARDS and s["shards"]["failed"] == 0 and s["shards"]["failures"] == []
    assert s["items"]["total"] == N_SHARDS // 2 == s["items"]["reported"]
    names = [k.rsplit("/", 1)[1] for k in happy.prediction_keys()]
    assert names == [f"part-{i:05d}.parquet" for i in range(N_SHARDS)]
    assert len(happy.keys("workers/")) == N_SHARDS // 2


def test_catalog_matches_shards_and_summary_metrics(happy: RunResult) -> None:
    table = _merged(happy)
    ids = table.column("object_id").to_numpy()
    assert len(ids) == TOTAL and len(np.unique(ids)) == TOTAL
    expected_ids = np.concatenate([s.object_ids for s in SHARDS])
    assert np.array_equal(np.sort(ids), np.sort(expected_ids))
    z_true = table.column("z_true").to_numpy(zero_copy_only=False)
    z_pred = table.column("z_pred").to_numpy(zero_copy_only=False)
    assert np.isfinite(z_pred).all()  # every object predicted (values: test_predictions_equal_local_inference)
    truth = dict(zip(expected_ids.tolist(), np.concatenate([s.redshift for s in SHARDS]).tolist(), strict=True))
    assert np.array_equal(z_true, np.array([truth[i] for i in ids.tolist()], dtype=np.float32))
    _assert_metrics_from_partials(happy.summary, table)
    assert len(happy.keys("metrics/")) == N_SHARDS // 2  # one partial per work item


def test_summary_and_catalogs_record_provenance(happy: RunResult) -> None:
    """What the workers ran with: in summary.json and in every catalog's Parquet metadata."""
    prov = happy.summary["provenance"]
    assert prov["consistent"] and prov["combinations"][0]["items"] == N_SHARDS // 2 and prov["items_unrecorded"] == 0
    assert prov["weights_sha256"] == weights_sha256(default_weights_path())  # predictions equal local ones (below)
    assert (prov["cosmicai_version"], prov["backend"], prov["precision"], prov["uncertainty"]) == (
        __version__,
        happy.payload.get("backend", "torch"),
        "fp32",
        "none",
    )
    loc = happy.location
    for key in happy.prediction_keys():
        body = happy._s3.get_object(Bucket=loc.bucket, Key=key)["Body"].read()
        assert catalog_provenance(body) == {
            k: prov[k]
            for k in (
                "cosmicai_version",
                "weights_name",
                "weights_sha256",
                "model_card",
                "backend",
                "precision",
                "uncertainty",
            )
        }, key


def test_predictions_equal_local_inference(happy: RunResult) -> None:
    from cosmicai.engine import Engine

    engine = Engine.from_weights(precision="fp32", batch_size=32)
    table = _merged(happy)
    got = dict(
        zip(table.column("object_id").to_pylist(), table.column("z_pred").to_numpy(zero_copy_only=False), strict=True)
    )
    for shard in SHARDS[:3]:  # three shards are enough to catch a wrong model, crop or order
        local = engine.predict(shard.images, shard.magnitudes)
        np.testing.assert_allclose([got[i] for i in shard.object_ids.tolist()], local, atol=1e-5)


def test_uncertainty_tta8_run_has_coverage_and_error_columns(run_pipeline, labelled_input: str) -> None:
    """issue 17: a tta8 run's catalogs carry z_err/z_p16/z_p84 (equal to local tta8 with the demo card's scale),
    and its summary the coverage over every labelled object, merged exactly from the partials."""
    from cosmicai.catalog import UNCERTAINTY_COLUMNS
    from cosmicai.engine import Engine
    from cosmicai.uncertainty import Tta8Predictor, calibration_for

    run = run_pipeline(
        {"input": labelled_input, "uncertainty": "tta8", "shards_per_worker": 4, "batch_size": 64, "max_concurrency": 2}
    )
    assert run.status == "SUCCEEDED" and run.summary["status"] == "SUCCEEDED", (
        run.error,
        run.cause,
        (run.summary or {}).get("shards", {}).get("failures", [])[:2],
    )
    table = _merged(run)
    assert table.column_names[-3:] == list(UNCERTAINTY_COLUMNS) and table.num_rows == TOTAL
    z_true, z_pred, z_err = (
        table.column(c).to_numpy(zero_copy_only=False).astype(np.float64) for c in ("z_true", "z_pred", "z_err")
    )
    metrics = run.summary["metrics"]
    assert metrics["coverage_68_n"] == TOTAL
    assert metrics["coverage_68"] == np.count_nonzero(np.abs(z_true - z_pred) <= z_err) / TOTAL
    assert_metrics_agree(metrics, compute_metrics(z_true, z_pred), (z_true, z_pred))
    assert run.summary["provenance"]["uncertainty"] == "tta8"
    key = run.prediction_keys()[0]
    assert (
        catalog_provenance(run._s3.get_object(Bucket=run.location.bucket, Key=key)["Body"].read())["uncertainty"]
        == "tta8"
    )
    local = Tta8Predictor(
        Engine.from_weights(precision="fp32", batch_size=64),
        calibration_for(default_weights_path()),
        images_per_call=64,
    ).predict(SHARDS[0].images, SHARDS[0].magnitudes)
    got = {
        c: dict(zip(table.column("object_id").to_pylist(), table.column(c).to_numpy(zero_copy_only=False), strict=True))
        for c in ("z_pred", *UNCERTAINTY_COLUMNS)
    }
    for c, want in (("z_pred", local.z_pred), *local.columns().items()):
        np.testing.assert_allclose([got[c][i] for i in SHARDS[0].object_ids.tolist()], want, atol=1e-5, err_msg=c)


def test_rerun_same_run_id_overwrites_without_duplicates(happy: RunResult, run_pipeline) -> None:
    before = {k: happy.catalog(k) for k in happy.prediction_keys()}
    keys_before = set(happy.keys())
    again = run_pipeline(dict(happy.payload))
    assert again.status == "SUCCEEDED" and again.summary["status"] == "SUCCEEDED"
    assert again.summary["objects"] == happy.summary["objects"]
    assert again.summary["metrics"] == happy.summary["metrics"]  # same partials, merged in plan order
    _assert_metrics_from_partials(again.summary, _merged(again))
    assert set(again.prediction_keys()) == set(before)
    for key, table in before.items():
        assert again.catalog(key).equals(table), key
    assert set(again.keys()) == keys_before
    assert set(again.keys("workers/")) == set(happy.keys("workers/"))


def test_make_invoke_with_a_corrupt_shard_is_partial(upload_shards, deployed_stack, stack_cli, localstack) -> None:
    good = {f"part-{i:05d}.safetensors": s for i, s in enumerate(SHARDS[:3])}
    uri = upload_shards(good | {"part-00003.safetensors": b"\x93NUMPY not a shard at all" * 8})
    run_id = new_test_run_id()
    payload = {"input": uri, "output": f"{deployed_stack['results_uri']}{run_id}/", "run_id": run_id}
    run_dir = ROOT / "runs" / run_id
    try:
        proc = stack_cli.make("invoke", localstack.port, f"PAYLOAD={json.dumps(payload)}", timeout_s=300)
        out = proc.stdout + proc.stderr
        # make exits 2 for any failed recipe; the recipe's own code (3 = PARTIAL) is in its message
        assert proc.returncode == 2 and "Error 3" in proc.stderr, out[-4000:]
        assert "PARTIAL" in out and "part-00003.safetensors" in out
        summary = json.loads((run_dir / "summary.json").read_text())
        objs = summary["objects"]
        assert objs["predicted"] == sum(s.n for s in SHARDS[:3]) and objs["total"] == objs["predicted"] + objs["failed"]
        [failure] = summary["shards"]["failures"]
        assert failure["shard"].endswith("part-00003.safetensors") and failure["error"] in (
            "unreadable",
            "unknown_format",
        )
        assert pq.read_table(run_dir / "catalog.parquet").num_rows == objs["predicted"]
        _assert_metrics_from_partials(summary, pq.read_table(run_dir / "catalog.parquet"))
        for name in ("report.md", "plots/z_pred_vs_z_true.png", "plots/residuals.png", "plots/workers.png"):
            assert (run_dir / name).is_file(), name
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_reference_payload_runs_with_warnings(run_pipeline, labelled_input: str, deployed_stack) -> None:
    data_bucket, _, data_prefix = labelled_input.removeprefix("s3://").partition("/")
    results = deployed_stack["results_uri"].removeprefix("s3://").partition("/")[2]
    tag = new_test_run_id()
    ref = {
        "data_bucket": data_bucket,
        "data_prefix": data_prefix,
        "bucket": deployed_stack["results_bucket"],
        "result_path": f"{results}{tag}",
        "world_size": 3,
        "file_limit": 5,
        "batch_size": 64,
        "script": "s3://x/evil.py",
    }
    result = run_pipeline(ref, fill=False)  # no run_id: Init makes one
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    s = result.summary
    assert s is not None and s["run_id"] == result.run_id and result.run_id.startswith("run-")
    assert (
        s["shards"]["total"] == 5
        and s["items"]["total"] == 3
        and s["objects"]["predicted"] == sum(x.n for x in SHARDS[:5])
    )
    assert any("'script' ignored" in w for w in s["warnings"])
    _assert_metrics_from_partials(s, _merged(result))
