"""`cosmicai invoke`: payload loading, run ids, exit codes, and the whole command against
an in-process pipeline (fake Step Functions over the MemoryS3 double)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cosmicai import cli
from cosmicai.commands import COMMAND_MODULES, invoke as inv
from cosmicai.payload import PayloadError, RunPayload
from cosmicai.plan import prepare_run
from cosmicai.runstore import RunLocation
from cosmicai.shards import shard_to_bytes
from cosmicai.summary import summarize_run
from cosmicai.worker import WorkItem, run_item
from fanout_s3 import MemoryS3
from tests.conftest import build_shard

BASE = {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/"}


def test_invoke_is_registered() -> None:
    assert "invoke" in COMMAND_MODULES
    args = cli.build_parser().parse_args(["invoke", "--state-machine-arn", "arn:x", "--payload", "{}"])
    assert args.out == Path("runs") and args.run_id is None and args.run is inv.run


def test_load_payload_inline_file_and_errors(tmp_path: Path) -> None:
    assert inv.load_payload(' {"a": 1}') == {"a": 1}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(BASE))
    assert inv.load_payload(str(f)) == BASE
    with pytest.raises(inv.InvokeError, match="neither inline JSON nor an existing file"):
        inv.load_payload(str(tmp_path / "missing.json"))
    with pytest.raises(inv.InvokeError, match="--payload: not valid JSON"):
        inv.load_payload("{bad")
    f.write_text("[1, 2]")
    with pytest.raises(inv.InvokeError, match="must be a JSON object, got list"):
        inv.load_payload(str(f))


def test_prepare_payload_fixes_the_run_id() -> None:
    body, p = inv.prepare_payload(BASE | {"run_id": "a"}, "b")
    assert body["run_id"] == p.run_id == "b"
    body, p = inv.prepare_payload(dict(BASE))
    assert body["run_id"] == p.run_id and p.run_id.startswith("run-")
    ref = {"data_bucket": "data-bucket", "data_prefix": "in/", "bucket": "out-bucket", "script": "x.py"}
    body, p = inv.prepare_payload(ref, "c")
    assert "script" in body and p.input == BASE["input"] and p.warnings  # Init maps it again and warns
    assert RunPayload.parse(body).run_id == "c"
    with pytest.raises(PayloadError, match="batch_size"):
        inv.prepare_payload(BASE | {"batch_size": 0})


def test_execution_name_is_unique_and_valid() -> None:
    names = {inv.execution_name("r" * 80, now=0.0) for _ in range(20)}
    assert len(names) > 1 and all(len(n) <= 80 and n.startswith("r" * 58 + "-19700101T000000-") for n in names)


@pytest.mark.parametrize(
    ("execution", "summary", "code"),
    [
        ("SUCCEEDED", "SUCCEEDED", 0),
        ("SUCCEEDED", "PARTIAL", 3),
        ("SUCCEEDED", "FAILED", 1),
        ("FAILED", "FAILED", 1),
        ("FAILED", None, 1),
        ("TIMED_OUT", None, 1),
        ("ABORTED", "PARTIAL", 1),
        ("RUNNING", None, 4),
        ("SUCCEEDED", None, 1),
    ],
)
def test_exit_code(execution: str, summary: str | None, code: int) -> None:
    assert inv.exit_code(execution, summary) == code


class _TinyEngine:
    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        return (0.01 * magnitudes.sum(axis=1) - 0.5).astype(np.float32)


class FakeSFN:
    """Runs Init -> items -> Summarize in-process on start_execution, like the state machine."""

    def __init__(self, s3: MemoryS3, fail_init: bool = False) -> None:
        self.s3, self.fail_init = s3, fail_init
        self.started: list[dict[str, Any]] = []
        self.desc: dict[str, Any] = {}

    def start_execution(self, stateMachineArn: str, name: str, input: str) -> dict[str, Any]:
        body = json.loads(input)
        self.started.append({"arn": stateMachineArn, "name": name, "input": body})
        arn = f"{stateMachineArn}:{name}"
        self.s3.clock += 10
        start = datetime.fromtimestamp(self.s3.clock, UTC)
        self.desc = {"executionArn": arn, "status": "SUCCEEDED"}
        if self.fail_init:
            self.desc |= {
                "status": "FAILED",
                "error": "PayloadError",
                "cause": json.dumps({"errorType": "PayloadError", "errorMessage": "payload.input: no shards"}),
            }
            return {"executionArn": arn, "startDate": start}
        self.s3.clock += 1
        payload = RunPayload.parse(body)
        prepare_run(self.s3, payload, started_at=self.s3.clock)
        plan = json.loads(self.s3.buckets["out-bucket"]["r/plan.json"])
        for n, item in enumerate(plan):
            run_item(WorkItem.parse(item), self.s3, _TinyEngine, cold_start=n == 0, init_seconds=0.1)
        summary = summarize_run(self.s3, RunLocation("out-bucket", "r/"), payload.run_id)
        if summary["status"] == "FAILED":
            self.desc |= {"status": "FAILED", "error": "RunFailed", "cause": "No shard was predicted"}
        return {"executionArn": arn, "startDate": start}

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return self.desc


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryS3, FakeSFN]:
    s3 = MemoryS3("data-bucket", "out-bucket")
    for i in range(4):
        s3.put_object(
            Bucket="data-bucket",
            Key=f"in/s{i}.safetensors",
            Body=shard_to_bytes(build_shard(10, seed=i, id_start=10 * i)),
        )
    sfn = FakeSFN(s3)
    monkeypatch.setattr("cosmicai.runstore.s3_client", lambda **_: s3)
    monkeypatch.setattr(inv, "sfn_client", lambda: sfn)
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps captured output at 80 columns otherwise
    return s3, sfn


def _invoke(tmp_path: Path, payload: dict[str, Any], *extra: str) -> int:
    return cli.main(
        [
            "invoke",
            "--state-machine-arn",
            "arn:sm",
            "--payload",
            json.dumps(payload),
            "--out",
            str(tmp_path / "runs"),
            "--poll",
            "0.01",
            *extra,
        ]
    )


def test_invoke_succeeded_writes_the_run_folder(
    tmp_path: Path, pipeline: tuple[MemoryS3, FakeSFN], capsys: pytest.CaptureFixture[str]
) -> None:
    s3, sfn = pipeline
    assert _invoke(tmp_path, BASE, "--run-id", "run-1") == 0
    assert sfn.started[0]["input"]["run_id"] == "run-1" and sfn.started[0]["name"].startswith("run-1-")
    run_dir = tmp_path / "runs" / "run-1"
    for name in ("summary.json", "plan.json", "run.json", "catalog.parquet", "report.md", "plots/workers.png"):
        assert (run_dir / name).is_file(), name
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and "40 total = 40 predicted + 0 failed" in out and "catalog.parquet" in out


def test_invoke_partial_exits_3_and_lists_the_failure(
    tmp_path: Path, pipeline: tuple[MemoryS3, FakeSFN], capsys: pytest.CaptureFixture[str]
) -> None:
    s3, _ = pipeline
    s3.put_object(Bucket="data-bucket", Key="in/s1.safetensors", Body=b"garbage" * 10)
    assert _invoke(tmp_path, BASE | {"run_id": "run-p"}) == 3
    out = capsys.readouterr().out
    assert "PARTIAL" in out and "in/s1.safetensors" in out


def test_invoke_failed_execution_prints_error_and_cause(
    tmp_path: Path, pipeline: tuple[MemoryS3, FakeSFN], capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline[1].fail_init = True
    assert _invoke(tmp_path, BASE | {"run_id": "run-f"}) == 1
    out = capsys.readouterr().out
    assert "execution FAILED: PayloadError: payload.input: no shards" in out and "no report" in out


def test_invalid_payload_starts_nothing(
    tmp_path: Path,
    pipeline: tuple[MemoryS3, FakeSFN],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _invoke(tmp_path, BASE | {"max_concurrency": 0}) == 2
    assert _invoke(tmp_path, BASE | {"colour": "red"}) == 2
    monkeypatch.delenv(inv.ARN_ENV, raising=False)
    assert cli.main(["invoke", "--payload", json.dumps(BASE)]) == 2
    assert pipeline[1].started == []
    out = capsys.readouterr().out
    assert "payload.max_concurrency" in out and "payload.colour: unknown key" in out and inv.ARN_ENV in out


def test_tracker_counts_only_this_runs_fresh_reports(pipeline: tuple[MemoryS3, FakeSFN]) -> None:
    s3, _ = pipeline
    loc = RunLocation("out-bucket", "r/")
    s3.put_object(
        Bucket="out-bucket",
        Key="r/workers/item-00000.json",
        Body=json.dumps({"run_id": "x", "item_id": "item-00000", "status": "failed"}).encode(),
    )
    s3.clock += 100
    t = inv.Tracker(run_id="x", since=datetime.fromtimestamp(s3.clock, UTC))
    t.poll(s3, loc)
    assert (t.items, t.done, t.failed) == (None, 0, 0)  # older than the execution
    s3.put_object(
        Bucket="out-bucket",
        Key="r/run.json",
        Body=json.dumps({"run_id": "x", "items": 3, "objects_planned": 30}).encode(),
    )
    s3.put_object(
        Bucket="out-bucket",
        Key="r/workers/item-00001.json",
        Body=json.dumps({"run_id": "x", "item_id": "item-00001", "status": "succeeded", "objects": 10}).encode(),
    )
    s3.put_object(
        Bucket="out-bucket",
        Key="r/workers/item-00002.json",
        Body=json.dumps({"run_id": "y", "item_id": "item-00002", "status": "succeeded", "objects": 10}).encode(),
    )
    t.poll(s3, loc)
    assert (t.items, t.objects_planned, t.done, t.failed, t.objects) == (3, 30, 1, 0, 10)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("2GB", 2_000_000_000),
        ("2 gb", 2_000_000_000),
        ("500MB", 500_000_000),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("0", 0),
        ("123", 123),
        ("10kB", 10_000),
        ("none", None),
        ("unlimited", None),
    ],
)
def test_parse_size(text: str, size: int | None) -> None:
    assert inv.parse_size(text) == size


def test_catalog_limit_flag_default_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from cosmicai.report import DEFAULT_CATALOG_LIMIT_BYTES

    args = cli.build_parser().parse_args(["invoke", "--payload", "{}"])
    assert args.catalog_download_limit == inv.DEFAULT_CATALOG_LIMIT == DEFAULT_CATALOG_LIMIT_BYTES and not args.dry_run
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["invoke", "--payload", "{}", "--catalog-download-limit", "lots"])
    assert info.value.code == 2 and "not a size like 2GB" in capsys.readouterr().err


def test_invoke_over_the_catalog_limit_keeps_it_in_place(
    tmp_path: Path,
    pipeline: tuple[MemoryS3, FakeSFN],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    assert _invoke(tmp_path, BASE, "--run-id", "run-big", "--catalog-download-limit", "1kB") == 0
    run_dir = tmp_path / "runs" / "run-big"
    assert not (run_dir / "catalog.parquet").exists()
    for name in (
        "summary.json",
        "report.md",
        "catalog.sample.parquet",
        "plots/workers.png",
        "plots/z_pred_vs_z_true.png",
    ):
        assert (run_dir / name).is_file(), name
    out = capsys.readouterr().out
    assert (
        "catalog: not downloaded (" in out
        and "> --catalog-download-limit 1.0 kB); query it in place at s3://out-bucket/r/predictions/" in out
    )
    assert "ds.dataset('out-bucket/r/predictions/', format=\"parquet\", filesystem=s3)" in out
    assert "40 total = 40 predicted + 0 failed" in out
