"""costs.run_bill against hand-computed bills, its transition count against the ASL, its S3 request
count against the code run on a counting S3 double, its log bytes against the functions' own lines."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cosmicai import costs
from cosmicai.costs import (
    CHILD_TRANSITIONS,
    RUN_STATES,
    CostError,
    Deployment,
    LambdaUsage,
    Prices,
    Rates,
    RunShape,
    WorkerSeconds,
    item_seconds,
    lambda_usage,
    project_run,
    project_seconds,
    run_bill,
    s3_requests,
)
from cosmicai.payload import RunPayload
from cosmicai.plan import MANIFEST_FORMAT, MANIFEST_NAME, prepare_run
from cosmicai.runstore import RunLocation
from cosmicai.shards import shard_to_bytes
from cosmicai.summary import summarize_run
from cosmicai.worker import WorkItem, run_item
from fanout_s3 import MemoryS3
from tests.conftest import build_shard

ASL = json.loads((Path(__file__).parents[2] / "statemachine" / "pipeline.asl.json").read_text())
GB_S, REQ, TRANSITION, GET, PUT, LOGS_GB = 0.0000166667, 0.20 / 1e6, 0.025 / 1000, 0.0004 / 1000, 0.005 / 1000, 0.50


def _success_path(states: dict, start: str) -> list[str]:
    """State names a successful execution enters: Next, a Choice's Default, until End or Succeed."""
    path, name = [], start
    while name:
        state = states[name]
        path.append(name)
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            break
        name = state.get("Default") if state["Type"] == "Choice" else state["Next"]
    return path


def test_transition_counts_follow_the_asl() -> None:
    assert tuple(_success_path(ASL["States"], ASL["StartAt"])) == RUN_STATES
    child = ASL["States"]["Infer all items"]["ItemProcessor"]
    assert child["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    # a child bills its start plus each state it enters: Infer on success ...
    assert CHILD_TRANSITIONS == 1 + len(_success_path(child["States"], child["StartAt"]))
    # ... and Record failure after Infer's Catch: one more per failed item (and per retry, Infer again)
    infer = child["States"][child["StartAt"]]
    assert [c["Next"] for c in infer["Catch"]] == ["Record failure"] and child["States"]["Record failure"]["End"]
    assert infer["Retry"]
    shape = RunShape(objects=100, shards=6, items=3, cold_starts=3, infer_retries=2, failed_items=1)
    assert costs.transitions(shape) == len(RUN_STATES) + 3 * 2 + 2 + 1


def test_bill_by_hand() -> None:
    shape = RunShape(objects=10_000, shards=8, items=4, cold_starts=2, infer_retries=1, failed_items=1, wall_s=9.0)
    usage = LambdaUsage(infer_gb_s=100.0, init_gb_s=1.0, summarize_gb_s=3.0, source="test")
    bill = run_bill(shape, usage)
    # Lambda: 104 GB-s x86; requests: Init + 4 items + 1 retry + 1 Record failure + Summarize = 8
    assert bill.lambda_compute == pytest.approx(104 * GB_S)
    assert bill.invocations == 8 and bill.lambda_requests == pytest.approx(8 * REQ)
    # Step Functions: 5 run states + 2 x 4 children + 1 retry + 1 Record failure = 15
    assert bill.transitions == 15 and bill.step_functions == pytest.approx(15 * TRANSITION)
    # S3, by caller. A retry redoes a mean item (2 shards): 1/4 more of the infer requests.
    # init: LIST 2 location checks + 1 page of the input + run.json's existence = 4; GET manifest; PUT plan, run
    # infer: GET 8 x 1.25 = 10; PUT (8 catalogs + 4 partials + 4 reports) x 1.25 = 20
    # record failure: PUT 1; item reader: GET plan.json
    # summarize: LIST run, plan, workers/, metrics/, predictions/ = 5; GET run, plan + 4 reports + 4 partials = 10;
    #            PUT summary.json, summary/workers.jsonl, summary/failures.jsonl = 3
    # client: 5 polls (9 s / 2 s) of workers/ + summary/run/plan + workers/ + predictions/ = 10 LIST,
    #         GET run.json + 4 reports + summary/run/plan + 4 reports + 2 line files + 8 catalogs = 22,
    #         HEAD run.json 1
    gets, puts, lists, heads = 1 + 10 + 1 + 10 + 22, 2 + 20 + 1 + 3, 4 + 5 + 10, 1
    assert bill.s3_requests == pytest.approx(gets * GET + puts * PUT + lists * PUT + heads * GET)
    # CloudWatch Logs: functions at INFO (8 shard lines, 4 item lines, 3 run lines; the failure line at WARNING),
    # Lambda's START/END/REPORT for 8 invocations, Step Functions at ERROR (1 retry event, 2 failure events)
    fn = 257 * 8 + 225 * 4 + (281 + 214 + 277) + 247 + 26 * (8 + 4 + 3 + 1)
    platform = 8 * sum(len(line) + 26 for line in costs.LAMBDA_PLATFORM_LINES)
    sfn = 3 * (len(costs.SFN_LOG_RECORD) + 26)
    assert bill.log_bytes == {"functions": fn, "lambda_platform": platform, "step_functions": sfn}
    assert bill.logs == pytest.approx((fn + platform + sfn) / 1e9 * LOGS_GB)
    total = bill.lambda_compute + bill.lambda_requests + bill.step_functions + bill.s3_requests + bill.logs
    assert bill.usd == pytest.approx(total) and bill.usd_per_million_objects == pytest.approx(total * 100)
    doc = bill.as_dict()
    assert doc["counts"]["s3_requests"]["infer"] == {"get": 10.0, "put": 20.0, "list": 0.0, "head": 0.0}
    assert sum(doc["components_per_million"].values()) == pytest.approx(total * 100)


def test_log_levels_and_arm64_change_what_they_should() -> None:
    shape = RunShape(objects=1000, shards=2, items=2, cold_starts=2)
    usage = LambdaUsage(10.0, 0.0, 0.0, "test")
    quiet = run_bill(shape, usage, Deployment(function_log_level="ERROR"))
    assert quiet.log_bytes["functions"] == 0 and quiet.log_bytes["step_functions"] == 0
    loud = run_bill(shape, usage, Deployment(state_machine_log_level="ALL"))
    # ALL: 20 events of the run and 7 per child
    assert loud.log_bytes["step_functions"] == (20 + 2 * 7) * (len(costs.SFN_LOG_RECORD) + 26)
    arm = run_bill(shape, usage, Deployment(arch="arm64"))
    assert arm.lambda_compute == pytest.approx(10.0 * 0.0000133334)
    free = run_bill(
        shape,
        usage,
        prices=Prices(
            lambda_gb_s_x86=0,
            lambda_per_request=0,
            sfn_per_transition=0,
            s3_get=0,
            s3_head=0,
            s3_put=0,
            s3_list=0,
            logs_ingest_per_gb=0,
        ),
    )
    assert free.usd == 0.0
    with pytest.raises(CostError, match="state_machine_log_level='OFF'"):
        Deployment(state_machine_log_level="OFF")
    with pytest.raises(CostError, match="cold_starts=5 exceeds"):
        RunShape(objects=10, shards=2, items=2, cold_starts=5)


def test_worker_seconds_by_hand() -> None:
    rates = Rates(
        objects_per_s=500.0,
        init_s=2.0,
        bytes_per_object=20_000,
        s3_mb_per_s=50.0,
        s3_request_s=0.05,
        catalog_bytes_per_object=10.0,
    )
    # an item of 3 shards of 1,000 objects: each GET 0.05 + 20 MB / 50 MB/s = 0.45 s, hidden behind the
    # previous shard's 2 s of compute except the first; each catalog PUT 0.05 + 10 KB / 50 MB/s; partial and
    # report 0.05 each
    one = item_seconds(3000, 3, rates)
    assert one.download_s == pytest.approx(0.45)
    assert one.compute_s == pytest.approx(6.0)
    assert one.upload_s == pytest.approx(3 * (0.05 + 10_000 / 50e6) + 0.1)
    shape = RunShape(objects=6000, shards=6, items=2, cold_starts=1)
    run = project_seconds(shape, rates)
    assert run.init_s == 2.0 and run.compute_s == pytest.approx(12.0)
    assert run.total_s == pytest.approx(2.0 + 2 * one.total_s)
    usage = lambda_usage(shape, run, Deployment(), "projected")
    init_s, summarize_s = costs.orchestration_seconds(shape)
    assert init_s == pytest.approx(1.0 + 6 * 157.96 / 200_000)
    assert summarize_s == pytest.approx(1.0 + 2 * 71.9 / 40_000)
    assert usage.infer_gb_s == pytest.approx(1769 / 1024 * run.total_s)
    assert usage.init_gb_s == pytest.approx(0.5 * init_s)


def test_project_run_is_the_bill_of_its_shape() -> None:
    p = project_run(
        objects_per_s=400.0,
        memory_mb=1769,
        shard_objects=5000,
        total_objects=659_817,
        concurrency=100,
        init_s=2.0,
        shards_per_item=2,
    )
    # 132 shards in 66 items; 100 workers: one cold start each for the first wave, 2 waves
    assert (p["shards"], p["invocations"], p["cold_starts"], p["waves"]) == (132, 66, 66, 1)
    rates = Rates(objects_per_s=400.0, init_s=2.0)
    one = item_seconds(659_817 / 66, 2, rates)
    assert p["wall_s"] == pytest.approx(2.0 + one.total_s)
    shape = RunShape(objects=659_817, shards=132, items=66, cold_starts=66, wall_s=p["wall_s"])
    bill = run_bill(shape, lambda_usage(shape, project_seconds(shape, rates), Deployment(), "projected"))
    assert p["run_usd"] == pytest.approx(bill.usd)
    assert p["cost"]["usd_per_million_objects"] == pytest.approx(bill.usd * 1e6 / 659_817)
    assert p["billed_s_per_invocation"] == pytest.approx(one.total_s + 2.0)


class _CountingS3(MemoryS3):
    def tally(self) -> Counter:
        kinds = Counter(call.split(" ")[0] for call in self.calls)
        self.calls.clear()
        return kinds


class _TinyEngine:
    def predict(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        return (0.01 * magnitudes.sum(axis=1)).astype(np.float32)


def _as_counts(req: costs.S3Requests) -> Counter:
    kinds = (("get", req.get), ("put", req.put), ("list", req.list), ("head", req.head))
    return Counter({k: int(v) for k, v in kinds if v})


def test_s3_requests_are_those_the_code_makes() -> None:
    s3 = _CountingS3("data-bucket", "out-bucket", list_prefixes=("in/", "r"))
    shards = {f"in/s{i}.safetensors": build_shard(5 + i, seed=i, id_start=100 * i) for i in range(5)}
    for key, shard in shards.items():
        s3.buckets["data-bucket"][key] = shard_to_bytes(shard)
    entries = [{"key": k.removeprefix("in/"), "count": s.n} for k, s in shards.items()]
    manifest = {"format": MANIFEST_FORMAT, "shards": entries}
    s3.buckets["data-bucket"]["in/" + MANIFEST_NAME] = json.dumps(manifest).encode()
    payload = RunPayload.parse(
        {"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "shards_per_worker": 2, "run_id": "run-bill"}
    )
    shape = RunShape(objects=sum(s.n for s in shards.values()), shards=5, items=3, cold_starts=3)
    want = {k: _as_counts(v) for k, v in s3_requests(shape).items()}

    prepare_run(s3, payload, started_at=1000.0)
    assert s3.tally() == want["init"]
    plan = json.loads(s3.buckets["out-bucket"]["r/plan.json"])
    for item in plan:
        run_item(WorkItem.parse(item), s3, _TinyEngine, cold_start=True, init_seconds=0.0, context={"memory_mb": 1769})
    assert s3.tally() == want["infer"]
    summary = summarize_run(s3, RunLocation("out-bucket", "r/"), "run-bill", now=1010.0)
    assert s3.tally() == want["summarize"]

    # summary.json's cost is this bill: the workers' measured GB-s (1,769 MB x their wall seconds, init 0 here),
    # Init's and Summarize's modelled (512 MB x (1 s + 5 x 0.79 ms), 1,769 MB x (1 s + 3 x 3.81 ms)), 5 requests
    # (Init, 3 items, Summarize), 5 + 3 x 2 = 11 transitions, the S3 requests counted above, the log bytes
    reports = [json.loads(s3.buckets["out-bucket"][f"r/workers/{item['item_id']}.json"]) for item in plan]
    infer_gb_s = sum(1769 * r["wall_seconds"] for r in reports) / 1024
    gb_s = infer_gb_s + 0.5 * (1 + 5 * 157.96 / 200_000) + 1769 / 1024 * (1 + 3 * 71.9 / 40_000)
    shape3 = RunShape(objects=shape.objects, shards=5, items=3, cold_starts=3)
    s3_usd = sum(r.usd(Prices()) for r in s3_requests(shape3).values())
    logs_usd = sum(costs.log_bytes(shape3, Deployment()).values()) / 1e9 * LOGS_GB
    cost = summary["cost"]
    assert cost["components"]["lambda_compute"] == pytest.approx(gb_s * GB_S, rel=1e-3)  # reports round to 0.1 ms
    assert cost["components"]["lambda_requests"] == pytest.approx(5 * REQ)
    assert cost["components"]["step_functions"] == pytest.approx(11 * TRANSITION)
    assert cost["components"]["s3_requests"] == pytest.approx(s3_usd)
    assert cost["components"]["cloudwatch_logs"] == pytest.approx(logs_usd)
    assert cost["usd"] == pytest.approx(sum(cost["components"].values()))
    assert cost["usd_per_million_objects"] == pytest.approx(cost["usd"] * 1e6 / shape.objects)


def test_worker_log_bytes_are_the_workers_lines(caplog: pytest.LogCaptureFixture) -> None:
    """The worker's INFO lines for one shard and one item, with a 40-character shard key and the stack's
    bucket names, are the bytes the model counts (within 10%: keys and run ids vary in length)."""
    from cosmicai import worker

    s3 = MemoryS3("cosmicai-data-123456789012", "cosmicai-results-123456789012")
    key = "shards/sdss-dr16/part-00000.safetensors"
    s3.buckets["cosmicai-data-123456789012"][key] = shard_to_bytes(build_shard(8, seed=1))
    item = WorkItem.parse(
        {
            "item_id": "item-00000",
            "run_id": "run-20261130T083451Z-72177a",
            "input_bucket": "cosmicai-data-123456789012",
            "output": "s3://cosmicai-results-123456789012/runs/run-20261130T083451Z-72177a/",
            "batch_size": 512,
            "precision": "fp32",
            "shards": [{"key": key, "name": "part-00000", "bytes": 1, "count": 8}],
        }
    )
    handler = worker._LOG.handlers[0]
    stream, handler.stream = handler.stream, io.StringIO()
    try:
        worker._LOG.setLevel(logging.INFO)
        run_item(item, s3, _TinyEngine, cold_start=True, init_seconds=0.0, context={"memory_mb": 1769})
        lines = handler.stream.getvalue().splitlines()
    finally:
        handler.stream = stream
    sizes = {json.loads(line)["message"]: len(line.encode()) for line in lines}
    assert sizes["shard done"] == pytest.approx(costs.WORKER_LOG_BYTES_PER_SHARD, rel=0.1)
    assert sizes["item done"] == pytest.approx(costs.WORKER_LOG_BYTES_PER_ITEM, rel=0.1)


def test_measured_worker_seconds_carry_their_phases() -> None:
    w = WorkerSeconds(init_s=1.0, download_s=2.0, compute_s=3.0, upload_s=0.5, other_s=0.25)
    assert w.total_s == pytest.approx(6.75)


def test_costs_command_prices_a_run_from_local_cloud_report_lines() -> None:
    """`cosmicai costs --run-id`: the REPORT lines the local cloud wrote (infer 3,008 MB, init 512 MB, summarize
    1,769 MB; two cold and one warm each) give the Lambda GB-s, the run's worker reports every other count."""
    from cosmicai.commands.costs import RunFacts, group_role, run_bill_from_reports
    from cosmicai.lambda_logs import parse_report_lines

    lines = (Path(__file__).parent / "data" / "report_lines_localstack.log").read_text().splitlines()
    reports = parse_report_lines(lines)
    roles = {"infer": "/aws/lambda/cosmicai-infer", "init": "/aws/lambda/cosmicai-init"}
    assert group_role("/aws/lambda/cosmicai-infer", roles) == "infer"
    assert group_role("/aws/lambda/stack-summarize") == "summarize" and group_role("/aws/vendedlogs/states/x") is None
    by_role = {"infer": reports[:3], "init": reports[3:6], "summarize": reports[6:]}
    # a run of 2 items (one of 2 shards), 256 objects, 12 s: 3 infer invocations = one retry
    facts = RunFacts(
        frozenset(r.request_id for r in reports[:3]),
        objects=256,
        items=2,
        shards=3,
        failed_items=0,
        started_at=100.0,
        finished_at=112.0,
    )
    bill = run_bill_from_reports(by_role, facts, "x86_64")
    # Lambda bills each image cold start's INIT: ceil(duration + init) ms (lambda_logs.ReportLine.billed_seconds)
    infer_gb_s = 3008 / 1024 * (31.434 + 32.276 + 0.018)
    init_gb_s = 512 / 1024 * (3.611 + 4.330 + 0.090)  # 2,233.46 + 1,377.22; 3,075.22 + 1,254.36; 89.97
    summarize_gb_s = 1769 / 1024 * (2.772 + 2.206 + 0.121)  # 1,530.46 + 1,240.72; 1,138.91 + 1,066.20; 120.27
    assert bill.usage.infer_gb_s == pytest.approx(infer_gb_s, rel=1e-6)
    assert bill.usage.init_gb_s == pytest.approx(init_gb_s, rel=1e-6)
    assert bill.usage.summarize_gb_s == pytest.approx(summarize_gb_s, rel=1e-6)
    assert bill.lambda_compute == pytest.approx((infer_gb_s + init_gb_s + summarize_gb_s) * GB_S, rel=1e-6)
    # requests: Init + 2 items + 1 retry + Summarize; transitions: 5 + 2 x 2 + 1 retry
    assert bill.invocations == 5 and bill.transitions == 10
    assert bill.deployment.infer_memory_mb == 3008 and bill.deployment.init_memory_mb == 512
    assert bill.usd_per_million_objects == pytest.approx(bill.usd * 1e6 / 256)
