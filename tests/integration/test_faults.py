"""Fault injection through the real state machine (issue 7 item 2): one faulty run, one test per fault.

A single execution holds good shards next to one shard per fault: corrupt, truncated, wrong
shape, NaN, inf, empty, duplicate ids, deleted after planning, and a worker crash, a timeout,
an out-of-memory kill and transient errors that succeed on retry. Those four come from the
test-only wrapper `lambda_fixtures/faulty_infer.py`, which this module deploys as the infer
handler of a stack of its own (the session's stack is never reconfigured: no state leaks
into other modules). Each test checks its shard's named reason and the summary's accounting
invariant. A second pair of runs, on the session's stack, checks that the same run twice
gives identical outputs.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from safetensors.numpy import save

from cosmicai.shards import shard_to_bytes
from itfixtures.acceptance import Area, assert_accounting, client, new_area, start, wait
from itfixtures.stack import executor_mode, leftovers, stack_with_prefix
from tests.conftest import build_shard

N = 8  # objects per shard: small, so the run is about orchestration, not compute
INFER_TIMEOUT_S = 45
INFER_MEMORY_MB = 1536
# The fault stack's infer handler (by name: importing it here would load the model into pytest).
FAULTY_INFER = "tests.integration.lambda_fixtures.faulty_infer.handler"


def raw_shard(ids: np.ndarray, images: np.ndarray, mags: np.ndarray, z: np.ndarray | None = None) -> bytes:
    """Shard-format bytes written without validation (the way a buggy producer would)."""
    tensors = {"object_id": ids, "images": images, "magnitudes": mags}
    if z is not None:
        tensors["redshift"] = z
    meta = {
        "format": "cosmicai.shard",
        "version": "1",
        "count": str(len(ids)),
        "has_redshift": "true" if z is not None else "false",
    }
    return save(tensors, metadata=meta)


def _arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    s = build_shard(N, seed=seed, id_start=seed * 1000)
    return s.object_ids.copy(), s.images.copy(), s.magnitudes.copy(), s.redshift.copy()


def _corrupt(seed: int) -> bytes:
    data = bytearray(shard_to_bytes(build_shard(N, seed=seed, id_start=seed * 1000)))
    data[12:60] = bytes(range(200, 248))  # garbles the JSON header: a damaged file
    return bytes(data)


def _wrong_shape(seed: int) -> bytes:
    ids, images, mags, z = _arrays(seed)
    return raw_shard(ids, np.ascontiguousarray(images[:, :, :16, :16]), mags, z)


def _non_finite(seed: int, where: str, value: float) -> bytes:
    ids, images, mags, z = _arrays(seed)
    (images if where == "images" else mags).reshape(-1)[3] = value
    return raw_shard(ids, images, mags, z)


def _duplicate_ids(seed: int) -> bytes:
    ids, images, mags, z = _arrays(seed)
    ids[5] = ids[2]
    return raw_shard(ids, images, mags, z)


def _empty() -> bytes:
    return raw_shard(
        np.zeros(0, np.int64),
        np.zeros((0, 5, 32, 32), np.float32),
        np.zeros((0, 5), np.float32),
        np.zeros(0, np.float32),
    )


def _good(seed: int) -> bytes:
    return shard_to_bytes(build_shard(N, seed=seed, id_start=seed * 1000))


# name -> (bytes, object count, expected error code or None if it must succeed)
def _fault_shards() -> dict[str, tuple[bytes, int, str | None]]:
    return {
        "good-0": (_good(1), N, None),
        "good-1": (_good(2), N, None),
        "corrupt": (_corrupt(3), N, "unreadable"),
        "truncated": (_good(4)[: len(_good(4)) // 2], N, "unreadable"),
        "wrong-shape": (_wrong_shape(5), N, "bad_shape"),
        "nan": (_non_finite(6, "images", float("nan")), N, "non_finite"),
        "inf": (_non_finite(7, "magnitudes", float("inf")), N, "non_finite"),
        "empty": (_empty(), 0, "empty"),
        "duplicate-ids": (_duplicate_ids(8), N, "duplicate_ids"),
        "fault-crash-0": (_good(9), N, "Runtime.ExitError"),
        "fault-sleep-0": (_good(10), N, "Sandbox.Timedout"),
        "fault-oom-0": (_good(11), N, "Runtime.OutOfMemory"),
        "fault-transient2-0": (_good(12), N, None),
        "zz-deleted": (_good(13), N, "unreadable"),  # sorted last: deleted before its worker reads it
    }


@pytest.fixture(scope="module")
def fault_stack(localstack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The fault tests' own stack: Terraform's, with a short infer timeout and a small memory size,
    and the fault-injecting wrapper as the infer handler; destroyed at the end of the module."""
    if executor_mode() != "process":
        pytest.skip("the fault wrapper runs from the project tree: process executor mode only")
    prefix = f"cosmicai-f{os.getpid() % 100000}"
    stack = stack_with_prefix(localstack.endpoint, tmp_path_factory.mktemp("fault-stack"), prefix)
    sizes = f"infer_timeout_s = {INFER_TIMEOUT_S}\ninfer_memory_mb = {INFER_MEMORY_MB}\n"
    stack.var_file.write_text(stack.var_file.read_text() + sizes)
    stack.env["COSMICAI_EXECUTOR_MODE"] = executor_mode()
    stack.deploy()
    outputs = stack.outputs()
    try:
        _use_wrapper(client("lambda"), outputs["function_names"]["infer"])
        yield outputs
    finally:
        stack.destroy()
        left = leftovers(stack.endpoint, outputs)
        assert not left, f"the fault stack's destroy left {left}"


def _use_wrapper(lam: Any, name: str) -> None:
    """Point the stack's infer function at the fault wrapper (the image stays: same code, other entry)."""
    lam.update_function_configuration(FunctionName=name, ImageConfig={"Command": [FAULTY_INFER]})
    for _ in range(120):
        conf = lam.get_function_configuration(FunctionName=name)
        if conf.get("LastUpdateStatus", "Successful") == "Successful":
            assert conf["ImageConfigResponse"]["ImageConfig"]["Command"] == [FAULTY_INFER], conf
            assert (conf["Timeout"], conf["MemorySize"]) == (INFER_TIMEOUT_S, INFER_MEMORY_MB), conf
            return
        time.sleep(0.5)
    raise TimeoutError(f"{name}: configuration update did not finish")


class FaultRun:
    """The faulty execution's area, summary and the shards it planned."""

    def __init__(
        self,
        area: Area,
        desc: dict[str, Any],
        shards: dict[str, tuple[bytes, int, str | None]],
        deleted_before_worker: bool,
    ) -> None:
        self.area, self.desc, self.shards = area, desc, shards
        self.summary = area.result("summary.json")
        self.plan = area.result("plan.json")
        self.deleted_before_worker = deleted_before_worker
        self.started_ms = int(desc["startDate"].timestamp() * 1000)

    def key(self, name: str) -> str:
        return f"{self.area.input_prefix}{name}.safetensors"

    def failure(self, name: str) -> dict[str, Any] | None:
        return next((f for f in self.summary["shards"]["failures"] if f["shard"] == self.key(name)), None)

    def check_accounting(self) -> None:
        assert self.summary is not None, f"no summary.json (execution {self.desc['status']})"
        planned = [s["key"] for item in self.plan for s in item["shards"]]
        assert sorted(planned) == sorted(self.key(n) for n in self.shards)
        assert_accounting(self.summary, sum(c for _, c, _ in self.shards.values()), planned)


@pytest.fixture(scope="module")
def fault_run(fault_stack: dict[str, Any]) -> FaultRun:
    """Upload the fault shards, start the run, delete `zz-deleted` once plan.json exists, wait."""
    area = new_area(fault_stack, "faults")
    shards = _fault_shards()
    area.put_many([(f"{n}.safetensors", b) for n, (b, _, _) in shards.items()])
    area.put_manifest({f"{n}.safetensors": c for n, (_, c, _) in shards.items()})
    t0 = time.monotonic()
    arn = start(fault_stack, area.payload(max_concurrency=3))
    wait(arn, timeout_s=120, poll_s=0.1, until=lambda: area.result("plan.json") is not None)
    client("s3").delete_object(Bucket=area.data_bucket, Key=f"{area.input_prefix}zz-deleted.safetensors")
    # The deleted shard's worker must not have reported yet, or the test proves nothing.
    early = area.result_keys("workers/")
    plan = area.result("plan.json")
    zz_item = next(i["item_id"] for i in plan if any(s["name"] == "zz-deleted" for s in i["shards"]))
    desc = wait(arn, timeout_s=420)
    print(f"fault run: {desc['status']} in {time.monotonic() - t0:.1f} s")
    return FaultRun(area, desc, shards, not any(k.endswith(f"/{zz_item}.json") for k in early))


def _assert_failed_with(run: FaultRun, name: str) -> None:
    run.check_accounting()
    expected = run.shards[name][2]
    failure = run.failure(name)
    assert failure is not None, f"{name} not listed as failed: {run.summary['shards']['failures']}"
    assert failure["error"] == expected, failure
    assert failure["objects"] == run.shards[name][1], failure
    assert failure["message"], failure
    assert f"{name}.parquet" not in " ".join(run.area.result_keys("predictions/"))


def test_run_is_partial_and_good_shards_are_predicted(fault_run: FaultRun) -> None:
    fault_run.check_accounting()
    assert fault_run.summary["status"] == "PARTIAL" and fault_run.desc["status"] == "SUCCEEDED", fault_run.summary
    expect_ok = [n for n, (_, _, err) in fault_run.shards.items() if err is None]
    assert fault_run.summary["objects"]["predicted"] == N * len(expect_ok)
    for name in expect_ok:
        table = pq.read_table(
            io.BytesIO(fault_run.area.result_bytes(f"{fault_run.area.output_prefix}predictions/{name}.parquet"))
        )
        assert table.num_rows == N and len(set(table.column("object_id").to_pylist())) == N


def test_corrupt_bytes(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "corrupt")


def test_truncated_file(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "truncated")


def test_wrong_array_shape(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "wrong-shape")


def test_nan_values(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "nan")


def test_inf_values(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "inf")


def test_empty_shard(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "empty")


def test_duplicate_object_ids(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "duplicate-ids")


def test_shard_deleted_after_planning(fault_run: FaultRun) -> None:
    assert fault_run.deleted_before_worker, "the worker had already reported when the shard was deleted"
    _assert_failed_with(fault_run, "zz-deleted")
    # AWS's answer to our role (prefix-conditioned s3:ListBucket) for a missing key: 403, not NoSuchKey
    assert "AccessDenied" in fault_run.failure("zz-deleted")["message"]


def test_worker_crash(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "fault-crash-0")
    assert "exit" in fault_run.failure("fault-crash-0")["message"].lower()


def test_worker_timeout(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "fault-sleep-0")


def test_worker_out_of_memory(fault_run: FaultRun) -> None:
    _assert_failed_with(fault_run, "fault-oom-0")
    # AWS's message for an out-of-memory kill names the signal, not the memory size
    assert "Runtime exited with error: signal: killed" in fault_run.failure("fault-oom-0")["message"]


def test_transient_errors_are_retried_then_succeed(fault_run: FaultRun) -> None:
    fault_run.check_accounting()
    assert fault_run.failure("fault-transient2-0") is None
    key = f"{fault_run.area.output_prefix}predictions/fault-transient2-0.parquet"
    assert pq.read_table(io.BytesIO(fault_run.area.result_bytes(key))).num_rows == N
    # Two failed attempts, each logged by the runtime as the function's error, then a success.
    assert _logged_transient_failures(fault_run, "fault-transient2-0") == ["1/2", "2/2"]


def _logged_transient_failures(run: FaultRun, shard_name: str) -> list[str]:
    """The `k/N` of each injected transient failure of this run in the infer function's log."""
    logs = client("logs")
    group = run.area.stack["log_group_names"]["infer"]
    tail = f" for shard {shard_name} of run {run.area.payload()['run_id']}"
    seen = []
    # Filtered here, not by filterPattern: LocalStack ignores patterns.
    for page in logs.get_paginator("filter_log_events").paginate(logGroupName=group, startTime=run.started_ms):
        for ev in page["events"]:
            msg = ev["message"].strip()
            if msg.startswith("[ERROR] TransientStorageError: injected transient failure") and msg.endswith(tail):
                seen.append(re.search(r"failure (\d+/\d+) ", msg).group(1))
    return sorted(seen)


# ------------------------------------------------------------------ idempotence


def test_same_run_twice_gives_identical_outputs(deployed_stack: dict[str, Any]) -> None:
    area = new_area(deployed_stack, "twice")
    area.put_many([(f"part-{i:05d}.safetensors", _good(20 + i)) for i in range(3)])
    outputs = []
    for _ in range(2):
        desc = wait(start(deployed_stack, area.payload(max_concurrency=3)), timeout_s=300)
        assert desc["status"] == "SUCCEEDED", desc
        keys = sorted(area.result_keys("predictions/"))
        outputs.append({k: area.result_bytes(k) for k in keys})
        summary = area.result("summary.json")
        assert_accounting(summary, 3 * N, [f"{area.input_prefix}part-{i:05d}.safetensors" for i in range(3)])
    assert list(outputs[0]) == list(outputs[1]) and len(outputs[0]) == 3, "a rerun added or lost catalogs"
    for key in outputs[0]:
        a, b = (pq.read_table(io.BytesIO(o[key])) for o in outputs)
        assert a.equals(b), f"{key} differs between the two runs"
        assert a.num_rows == N and len(set(a.column("object_id").to_pylist())) == N
    assert len(area.result_keys("workers/")) == 3, "reruns must overwrite worker reports, not add to them"
