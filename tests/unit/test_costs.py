"""The cost model against hand-computed cases (REFERENCE.md section 4)."""

from __future__ import annotations

import pytest

from cosmicai.costs import (
    CostError,
    CostInputs,
    Prices,
    cost_per_million,
    lambda_compute_usd,
    memory_for_vcpus,
    recommend_memory,
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
    # 1,769 MB, 250 obj/s, 5,000 objects per invocation, 2 s init: billed 22 s.
    q = cost_per_million(CostInputs(memory_mb=1769, objects_per_s=250, objects_per_invocation=5000, init_s=2.0))
    invocations = 1_000_000 / 5000  # 200
    compute = 1769 / 1024 * 22 * 0.0000166667 * invocations
    requests = 0.20 / 1_000_000 * invocations
    sfn = 0.025 / 1000 * invocations  # one transition each
    s3 = (0.0004 / 1000 + 0.005 / 1000) * invocations
    assert q["billed_s_per_invocation"] == pytest.approx(22.0)
    assert q["invocations_per_million"] == pytest.approx(200)
    assert q["components"]["lambda_compute"] == pytest.approx(compute)
    assert q["components"]["lambda_requests"] == pytest.approx(requests)
    assert q["components"]["step_functions"] == pytest.approx(sfn)
    assert q["components"]["s3"] == pytest.approx(s3)
    assert q["usd_per_million_objects"] == pytest.approx(compute + requests + sfn + s3)
    assert q["usd_per_million_objects"] == pytest.approx(0.13281, rel=1e-4)
    assert q["inputs"]["memory_mb"] == 1769 and q["prices"]["lambda_gb_s_x86"] == 0.0000166667
    assert q["vcpus"] == pytest.approx(1.0)


def test_fixed_transitions_spread_over_run_and_custom_prices() -> None:
    base = CostInputs(memory_mb=1024, objects_per_s=100, objects_per_invocation=1000)
    with_fixed = CostInputs(**{**base.__dict__, "fixed_sfn_transitions": 10, "run_objects": 500_000})
    diff = cost_per_million(with_fixed)["components"]["step_functions"] - cost_per_million(base)["components"]["step_functions"]
    assert diff == pytest.approx(10 * 2 * 0.025 / 1000)  # 10 transitions per 0.5 M objects
    free = Prices(lambda_gb_s_x86=0.0, lambda_per_request=0.0, sfn_per_transition=0.0, s3_get=0.0, s3_put=0.0)
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
