"""`cosmicai invoke --dry-run`: plans like Init without writing, prices the plan with the cost
model, compares the concurrency it needs with the account's, and starts nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from cosmicai import cli
from cosmicai.commands import invoke as inv
from cosmicai.costs import (
    Deployment,
    Rates,
    RunShape,
    item_seconds,
    lambda_usage,
    project_seconds,
    run_bill,
    throughput_at_memory,
)
from cosmicai.payload import RunPayload
from cosmicai.plan import plan_run, prepare_run
from cosmicai.shards import shard_to_bytes
from fanout_s3 import MemoryS3
from tests.conftest import build_shard

BASE = {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/"}
SIZES = [10, 11, 12, 13, 14]  # objects per shard
BENCH = {
    "created_at": "2026-11-25T20:33:00",
    "worker_path": {
        "rows": [
            {"runner": "fp32", "threads": 1, "batch_size": 256, "objects_per_cpu_s": 380.0},
            {"runner": "fp32", "threads": 1, "batch_size": 1024, "objects_per_cpu_s": 390.0},
            {"runner": "int8", "threads": 1, "batch_size": 512, "objects_per_cpu_s": 700.0},
            {"runner": "fp32", "threads": 2, "batch_size": 512, "objects_per_cpu_s": 340.0},
        ],
        "thread_scaling": {"fp32": {"efficiency_t2": 0.9}},
    },
    "cold_start": {
        "probe": [{"precision": "fp32", "first_prediction_s": 1.25}, {"precision": "int8", "first_prediction_s": 1.5}]
    },
}


def _store() -> MemoryS3:
    s3 = MemoryS3("data-bucket", "out-bucket")
    for i, n in enumerate(SIZES):
        s3.put_object(
            Bucket="data-bucket",
            Key=f"in/s{i}.safetensors",
            Body=shard_to_bytes(build_shard(n, seed=i, id_start=100 * i)),
        )
    return s3


class NoSFN:
    """A Step Functions client that fails the test if anything is started."""

    def start_execution(self, **_: Any) -> None:
        raise AssertionError("the dry run started an execution")


def _lambda(account: int | None = 1000, unreserved: int = 900, reserved: int | None = None) -> tuple[Any, Stubber]:
    lam = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(lam)
    if account is None:
        stub.add_client_error("get_account_settings", "AccessDeniedException", "not allowed", 403)
    else:
        stub.add_response(
            "get_account_settings",
            {"AccountLimit": {"ConcurrentExecutions": account, "UnreservedConcurrentExecutions": unreserved}},
        )
        stub.add_response(
            "get_function_concurrency",
            {} if reserved is None else {"ReservedConcurrentExecutions": reserved},
            {"FunctionName": "stack-infer"},
        )
    stub.activate()
    return lam, stub


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    s3 = _store()
    lam, stub = _lambda()
    monkeypatch.setattr("cosmicai.runstore.s3_client", lambda **_: s3)
    monkeypatch.setattr("cosmicai.runstore.aws_client", lambda service, *a, **k: {"lambda": lam}[service])
    monkeypatch.setattr(inv, "sfn_client", lambda: NoSFN())
    for var in inv.STACK_ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(inv.STACK_ENV["functions"], json.dumps({"infer": "stack-infer"}))
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps captured output at 80 columns otherwise
    bench = tmp_path / "results.json"
    bench.write_text(json.dumps(BENCH))
    return {"s3": s3, "stub": stub, "bench": bench, "monkeypatch": monkeypatch}


def _dry(payload: dict[str, Any], bench: Path, *extra: str) -> int:
    return cli.main(["invoke", "--dry-run", "--payload", json.dumps(payload), "--bench-results", str(bench), *extra])


def _rows(out: str) -> dict[str, str]:
    """The table's rows as {label: value} from rich's box drawing."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 2 and cells[0]:
            rows[cells[0]] = cells[1]
    return rows


def test_plan_run_writes_nothing_and_plans_what_init_writes() -> None:
    s3 = _store()
    payload = RunPayload.parse(BASE | {"shards_per_worker": 2, "run_id": "r1"})
    planned = plan_run(s3, payload)
    assert not [c for c in s3.calls if c.startswith("put ") and not c.startswith("put in/")]
    assert not s3.buckets["out-bucket"]
    assert len(planned.items) == 3 and planned.objects_planned == sum(SIZES) and planned.shards_without_count == 0
    prepare_run(s3, payload, started_at=0.0)
    assert json.loads(s3.buckets["out-bucket"]["r/plan.json"]) == [
        i.wire() for i in planned.items
    ]  # Init's plan, the same code


def test_dry_run_prints_plan_cost_and_concurrency_and_starts_nothing(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _dry(BASE | {"shards_per_worker": 2, "run_id": "dry-1"}, env["bench"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["run"] == "dry-1" and rows["work items"] == "3"
    assert rows["shards"] == "5 (0 of unknown count)" and rows["objects"] == str(sum(SIZES))
    assert "bench/results.json" not in rows["throughput"] and str(env["bench"]) in rows["throughput"]
    assert "fp32 at batch 256" in rows["throughput"]  # the measured batch nearest the payload's 512 (ties: smaller)
    assert rows["infer function"].startswith("1769 MB x86_64: the stack's defaults")
    assert (
        rows["concurrency"] == "needs 3 = min(3 work items, max_concurrency 100); account limit 1000 (unreserved 900)"
    )
    usd = float(rows["projected USD (run)"])
    per_m = float(rows["projected USD / 1M objects"])
    assert usd > 0 and per_m == pytest.approx(usd * 1e6 / sum(SIZES), rel=1e-3)
    assert not env["s3"].buckets["out-bucket"]  # nothing written
    env["stub"].assert_no_pending_responses()


def test_dry_run_uses_the_stack_outputs_and_warns_about_concurrency(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    lam, _ = _lambda(account=1000, unreserved=1000, reserved=2)
    mp = env["monkeypatch"]
    mp.setattr("cosmicai.runstore.aws_client", lambda service, *a, **k: lam)
    mp.setenv(inv.STACK_ENV["memory"], "3538")
    mp.setenv(inv.STACK_ENV["arch"], "arm64")
    assert _dry(BASE | {"precision": "int8"}, env["bench"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["infer function"] == "3538 MB arm64: the deployed stack's outputs"
    assert rows["throughput"].startswith("1400 objects/s per worker")  # 2 vCPU, int8 has no 2-thread figure
    assert (
        "needs 5 = min(5 work items" in rows["concurrency"]
        and "infer function reserved 2: at most 2 run at once" in rows["concurrency"]
    )


def test_dry_run_without_lambda_says_unknown(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    lam, _ = _lambda(account=None)
    env["monkeypatch"].setattr("cosmicai.runstore.aws_client", lambda service, *a, **k: lam)
    assert _dry(BASE | {"max_concurrency": 2}, env["bench"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["concurrency"].startswith(
        "needs 2 = min(5 work items, max_concurrency 2); the account's is unknown (Lambda GetAccountSettings failed"
    )


def test_dry_run_counts_unknown_shards_and_estimates_them(
    env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    s3: MemoryS3 = env["s3"]
    s3.put_object(Bucket="data-bucket", Key="in/s9.safetensors", Body=b"\x00" * 64)  # header unreadable: no count
    assert _dry(BASE, env["bench"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert rows["shards"] == "6 (1 of unknown count)"
    assert rows["objects"].startswith(f"{sum(SIZES)} counted + ~0 estimated")  # 64 bytes are no object
    assert "warning: 1 shard(s) with unreadable headers planned anyway" in out


@pytest.mark.parametrize(
    ("payload", "env_var", "fragment"),
    [
        (BASE | {"batch_size": 0}, None, "payload.batch_size"),
        (BASE | {"colour": "red"}, None, "payload.colour: unknown key"),
        (BASE | {"input": "s3://data-bucket/nothing/"}, None, "payload.input: no shards"),
        (BASE | {"output": "s3://no-such-bucket/r/"}, None, "payload.output: bucket 'no-such-bucket' does not exist"),
        (
            BASE,
            (inv.STACK_ENV["results"], "s3://out-bucket/runs/"),
            "payload.output: s3://out-bucket/r/ is outside the stack's results_uri",
        ),
        (
            BASE,
            (inv.STACK_ENV["data"], "s3://data-bucket/shards/"),
            "payload.input: s3://data-bucket/in/ is outside the stack's data_uri",
        ),
    ],
)
def test_dry_run_of_a_payload_that_would_not_run_exits_2(
    env: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    payload: dict[str, Any],
    env_var: tuple[str, str] | None,
    fragment: str,
) -> None:
    if env_var:
        env["monkeypatch"].setenv(*env_var)
    assert _dry(payload, env["bench"]) == 2
    out = capsys.readouterr().out
    assert fragment in out and "it would not run" in out
    assert not env["s3"].buckets["out-bucket"]


def test_dry_run_of_too_many_work_items_exits_2(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("cosmicai.plan.MAX_WORKERS", 4)  # 5 shards, one per item
    assert _dry(BASE, env["bench"]) == 2
    assert "set shards_per_worker to 2 or more" in capsys.readouterr().out


def test_bench_throughput_picks_precision_batch_and_cold_start() -> None:
    t = inv.bench_throughput(BENCH, "fp32", 800, "b.json")
    assert t is not None and t.rates_by_threads == {1: 390.0, 2: pytest.approx(702.0)} and t.init_s == 1.25
    assert t.source == "b.json, 2026-11-25T20:33, fp32 at batch 1024"
    t = inv.bench_throughput(BENCH, "int8", 512, "b.json")
    assert t is not None and t.rates_by_threads == {1: 700.0} and t.init_s == 1.5
    assert inv.bench_throughput(BENCH, "bf16", 512, "b.json") is None


def test_load_throughput_falls_back_to_the_built_in_figures_and_says_so(tmp_path: Path) -> None:
    t = inv.load_throughput(tmp_path / "absent.json", "int8", 512)
    assert t.rates_by_threads == {1: inv.MEASURED_OBJECTS_PER_S["int8"]} and "absent.json absent" in t.source
    assert t.source.startswith(inv.MEASURED_SOURCE)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "unreadable" in inv.load_throughput(bad, "fp32", 512).source
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(BENCH))
    assert "has no bf16 measurement" in inv.load_throughput(partial, "bf16", 512).source


def test_projection_is_the_cost_model_for_this_plan() -> None:
    t = inv.Throughput({1: 400.0}, 1.0, "test")
    p = inv.project(
        objects=10_000,
        items=4,
        shards=8,
        concurrency=2,
        throughput=t,
        memory_mb=1769,
        arch="x86_64",
        shard_bytes=10_000 * 20_000,
    )
    # the bill of this plan's shape: 4 items of 2 shards, 2 workers (2 cold starts), header GETs (no manifest known)
    rates = Rates(objects_per_s=throughput_at_memory({1: 400.0}, 1769), init_s=1.0, bytes_per_object=20_000)
    one = item_seconds(2500, 2, rates)
    shape = RunShape(objects=10_000, shards=8, items=4, cold_starts=2, manifest=False, wall_s=1.0 + 2 * one.total_s)
    bill = run_bill(shape, lambda_usage(shape, project_seconds(shape, rates), Deployment(), "projected"))
    assert p["usd_per_million_objects"] == pytest.approx(bill.usd_per_million_objects)
    assert p["run_usd"] == pytest.approx(bill.usd) and p["components"] == pytest.approx(bill.components)
    # wall: one INIT, then 2 waves of an item: GET 0.05 s + 25 MB at 67 MB/s, the second shard's GET behind
    # the first's 6.25 s of compute, 2 x 6.25 s compute, 2 catalog PUTs and the partial and report
    item = 0.05 + 1250 * 20_000 / 67e6 + 2 * 1250 / 400.0 + 2 * (0.05 + 1250 * 13.2 / 67e6) + 0.1
    assert p["waves"] == 2 and p["wall_s"] == pytest.approx(1.0 + 2 * item)


def test_estimate_objects_scales_unknown_shards_by_size() -> None:
    from cosmicai.plan import ShardInfo

    shards = [ShardInfo("a", "a", 1000, 10), ShardInfo("b", "b", 3000, None)]
    assert inv.estimate_objects(shards) == (10, 30)
    nothing_known = [ShardInfo("c", "c", 2 * inv.BYTES_PER_OBJECT, None)]
    assert inv.estimate_objects(nothing_known) == (0, 2)


def test_concurrency_text_when_the_account_is_short() -> None:
    c = inv.Concurrency(needed=500, items=800, max_concurrency=500, account_limit=1000, unreserved=400)
    text = inv.concurrency_text(c)
    assert text.startswith("needs 500 = min(800 work items, max_concurrency 500); account limit 1000 (unreserved 400)")
    assert "at most 400 run at once" in text and "lower max_concurrency" in text
