"""The fault injector of the fault tests' deploy: each kind does what the acceptance suite expects,
the wrapper handler injects before the real one, and the production package has no hook."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cosmicai.worker import TransientStorageError
from tests.integration.lambda_fixtures import faults

ROOT = Path(__file__).resolve().parents[2]


def test_transient_fails_the_first_n_attempts_of_a_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for attempt in (1, 2):
        with pytest.raises(TransientStorageError, match=f"{attempt}/2 for shard fault-transient2-a of run run-x"):
            faults.inject("run-x", ["part-0", "fault-transient2-a"])
    faults.inject("run-x", ["part-0", "fault-transient2-a"])  # third attempt succeeds
    with pytest.raises(TransientStorageError, match="1/2"):
        faults.inject("run-y", ["fault-transient2-a"])  # counted per run


def test_other_names_are_untouched() -> None:
    faults.inject("r", ["part-00000", "faulty-crash", "my-fault-crash"])


def test_crash_exits_the_process_with_a_non_zero_code() -> None:
    code = (
        "from tests.integration.lambda_fixtures import faults\nfaults.inject('r', ['fault-crash-7'])\nprint('survived')"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == faults.CRASH_EXIT_CODE and "survived" not in proc.stdout


def test_oom_without_a_limit_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "64")  # 96 MiB hoarded, then the named error
    with pytest.raises(faults.FaultInjectionError, match="fault-oom-0: used 128 MiB > 64 MB but was not killed"):
        faults.inject("r", ["fault-oom-0"])


def test_the_wrapper_injects_then_runs_the_real_handler(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.integration.lambda_fixtures import faulty_infer

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(faulty_infer.infer, "handler", lambda event, context: calls.append(event) or {"ok": True})
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    shard = {"key": "in/fault-transient1-0.safetensors", "name": "fault-transient1-0", "bytes": 10, "count": 1}
    event = {
        "run_id": "r1",
        "item_id": "item-00000",
        "input_bucket": "b",
        "output": "s3://o/run/",
        "shards": [shard],
        "objects": 1,
        "batch_size": 8,
        "precision": "fp32",
    }
    with pytest.raises(TransientStorageError, match="1/1"):
        faulty_infer.handler(event, None)
    assert calls == []  # the fault came first
    assert faulty_infer.handler(event, None) == {"ok": True} and calls == [event]


def test_the_production_package_has_no_fault_hook() -> None:
    assert importlib.util.find_spec("cosmicai.faults") is None
    hooked = [p.relative_to(ROOT) for p in (ROOT / "handlers/cosmicai").rglob("*.py") if "fault-" in p.read_text()]
    assert hooked == [], f"fault-injection names in production code: {hooked}"
