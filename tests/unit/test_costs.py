"""The cost model against hand-computed cases (REFERENCE.md section 4)."""

from __future__ import annotations

import pytest

from cosmicai.costs import (
    BYTES_PER_OBJECT,
    CostError,
    CostInputs,
    Deployment,
    Prices,
    Rates,
    RunShape,
    cost_per_million,
    item_seconds,
    lambda_compute_usd,
    lambda_usage,
    memory_for_vcpus,
    project_seconds,
    recommend_memory,
    run_bill,
    vcpus_for_memory,
)


def test_vcpu_share_follows_memory() -> None:
    assert vcpus_for_memory(1769) == pytest.approx(1.0)
    assert vcpus_for_memory(3538) == pytest.approx(2.0)
    # Six vCPUs exist at 10,240 MB, but the CPU share is still memory / 1,769 MB.
    assert vcpus_for_memory(10240) == pytest.approx(10240 / 1769)
    assert vcpus_for_memory(128) == pytest.approx(128 / 1769)
    assert memory_for_vcpus(1) == 1769
    assert memory_for_vcpus(2) == 3538
    assert memory_for_vcpus(6) == 10240
    with pytest.raises(CostError, match="memory_mb=20000"):
        vcpus_for_memory(20000)
    with pytest.raises(CostError, match="vcpus=7"):
        memory_for_vcpus(7)


def test_reference_invocation_cost() -> None:
    # The reference's 75 MB partition: 10,240 MB billed 40.9 s on x86.
    usd = lambda_compute_usd(10240, 40.9)
    assert usd == pytest.approx(10 * 40.9 * 0.0000166667)
    # 3,835 objects per invocation -> about $1.78 per million objects (compute only).
    assert usd * 1_000_000 / 3835 == pytest.approx(1.78, abs=0.01)
    assert lambda_compute_usd(1024, 1.0, "arm64") == pytest.approx(0.0000133334)
    with pytest.raises(CostError, match="arch 'sparc'"):
        lambda_compute_usd(1024, 1.0, "sparc")


def test_cost_per_million_by_hand() -> None:
    # 1,769 MB, 250 obj/s, 5,000 objects per invocation, 2 s init on every invocation (a quote's upper bound).
    q = cost_per_million(CostInputs(memory_mb=1769, objects_per_s=250, objects_per_invocation=5000, init_s=2.0))
    invocations = 1_000_000 / 5000  # 200, each cold
    rates = Rates(objects_per_s=250, init_s=2.0)
    # one item: GET 0.05 s + 5,000 x 20,512 B at 67 MB/s; 20 s compute; catalog PUT 0.05 s + 66 KB;
    # partial and report 0.1 s
    download = 0.05 + 5000 * BYTES_PER_OBJECT / 67e6
    upload = 0.05 + 5000 * 13.2 / 67e6 + 0.1
    billed = 2.0 + download + 20.0 + upload
    assert item_seconds(5000, 1, rates).total_s == pytest.approx(billed - 2.0)
    infer = 1769 / 1024 * billed * invocations * 0.0000166667
    init = 512 / 1024 * (1.0 + 200 * 157.96 / 200_000) * 0.0000166667
    summarize = 1769 / 1024 * (1.0 + 200 * 71.9 / 40_000) * 0.0000166667
    assert q["billed_s_per_invocation"] == pytest.approx(billed)
    assert q["invocations_per_million"] == 200
    assert q["components"]["lambda_compute"] == pytest.approx(infer + init + summarize)
    assert q["components"]["lambda_requests"] == pytest.approx(0.20 / 1e6 * (200 + 2))
    assert q["components"]["step_functions"] == pytest.approx(0.025 / 1000 * (5 + 2 * 200))
    assert q["usd_per_million_objects"] == pytest.approx(sum(q["components"].values()))
    assert q["inputs"]["memory_mb"] == 1769 and q["prices"]["lambda_gb_s_x86"] == 0.0000166667
    assert q["vcpus"] == pytest.approx(1.0)


def test_quote_is_the_bill_of_a_million_objects() -> None:
    base = CostInputs(memory_mb=1024, objects_per_s=100, objects_per_invocation=1000)
    shape = RunShape(
        objects=1_000_000,
        shards=1000,
        items=1000,
        cold_starts=1000,
        wall_s=item_seconds(1000, 1, Rates(objects_per_s=100, init_s=0.0)).total_s,
    )
    seconds = project_seconds(shape, Rates(objects_per_s=100, init_s=0.0))
    bill = run_bill(
        shape,
        lambda_usage(shape, seconds, Deployment(infer_memory_mb=1024), "projected"),
        Deployment(infer_memory_mb=1024),
    )
    assert cost_per_million(base)["usd_per_million_objects"] == pytest.approx(bill.usd)
    free = Prices(
        lambda_gb_s_x86=0.0,
        lambda_per_request=0.0,
        sfn_per_transition=0.0,
        s3_get=0.0,
        s3_head=0.0,
        s3_put=0.0,
        s3_list=0.0,
        logs_ingest_per_gb=0.0,
    )
    assert cost_per_million(base, free)["usd_per_million_objects"] == 0.0


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"objects_per_s": 0}, "objects_per_s=0"),
        ({"objects_per_invocation": 0}, "objects_per_invocation=0"),
        ({"init_s": -1}, "init_s=-1"),
        ({"memory_mb": 64}, "memory_mb=64"),
    ],
)
def test_bad_inputs_are_named(bad: dict, match: str) -> None:
    fields = {"memory_mb": 1769, "objects_per_s": 100, "objects_per_invocation": 100} | bad
    with pytest.raises(CostError, match=match):
        cost_per_million(CostInputs(**fields))


def test_recommend_memory_picks_lowest_gb_s_per_object() -> None:
    # 2 threads at 1.6x speed cost 2x memory: 1 thread is cheaper per object.
    assert recommend_memory({1: 300.0, 2: 480.0}) == (1, 1769)
    # A second thread that more than doubles throughput wins.
    assert recommend_memory({1: 300.0, 2: 650.0}) == (2, 3538)
    # A peak RSS above 1,769 MB forces more memory for the 1-thread option.
    assert recommend_memory({1: 300.0, 2: 480.0}, min_memory_mb=3000) == (2, 3538)
    with pytest.raises(CostError, match="no throughput"):
        recommend_memory({})
