"""AWS cost model for a run (REFERENCE.md section 4): Lambda, Step Functions, S3.

Small pure functions over a `Prices` dataclass (us-east-1 list prices by default).
Every quote is in USD per million objects and lists every input it used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MB_PER_VCPU = 1769  # Lambda gives one full vCPU at 1,769 MB ...
MAX_VCPU = 6  # ... and 6 vCPU at the 10,240 MB maximum
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10240
PER_MILLION = 1_000_000
# Throughput when no bench/results.json is at hand: the worker path's objects per CPU-second at
# one thread by precision, and the init (cold start to first prediction), of `make bench` on the
# 2-core AVX-512 build machine (bench/REPORT.md, 2026-11-25). Rerun `make bench` on your host.
MEASURED_OBJECTS_PER_S = {"fp32": 386.0, "bf16": 564.0, "int8": 699.0}
MEASURED_INIT_S = 1.43
MEASURED_SOURCE = "built-in figures of bench/REPORT.md 2026-11-25"


class CostError(ValueError):
    """An impossible cost-model input (message names the input and its value)."""


@dataclass(frozen=True)
class Prices:
    """USD list prices (us-east-1)."""

    lambda_gb_s_x86: float = 0.0000166667
    lambda_gb_s_arm64: float = 0.0000133334
    lambda_per_request: float = 0.20 / PER_MILLION
    sfn_per_transition: float = 0.025 / 1000
    s3_get: float = 0.0004 / 1000
    s3_put: float = 0.005 / 1000

    def gb_second(self, arch: str) -> float:
        """Lambda GB-second price for `x86_64` or `arm64`."""
        if arch in ("x86_64", "x86"):
            return self.lambda_gb_s_x86
        if arch == "arm64":
            return self.lambda_gb_s_arm64
        raise CostError(f"arch {arch!r} unknown; use 'x86_64' or 'arm64'")


DEFAULT_PRICES = Prices()


def _check_memory(memory_mb: float) -> None:
    if not MIN_MEMORY_MB <= memory_mb <= MAX_MEMORY_MB:
        raise CostError(f"memory_mb={memory_mb} outside Lambda's {MIN_MEMORY_MB}..{MAX_MEMORY_MB} MB")


def vcpus_for_memory(memory_mb: float) -> float:
    """Lambda's CPU share at a memory size: memory / 1,769 MB (5.79 at 10,240 MB, spread over 6 vCPU)."""
    _check_memory(memory_mb)
    return min(MAX_VCPU, memory_mb / MB_PER_VCPU)


def memory_for_vcpus(vcpus: float) -> int:
    """Smallest whole-MB memory size with a CPU share of `vcpus` (6 means the 10,240 MB maximum)."""
    if not 0 < vcpus <= MAX_VCPU:
        raise CostError(f"vcpus={vcpus} outside 0..{MAX_VCPU}")
    return min(MAX_MEMORY_MB, max(MIN_MEMORY_MB, math.ceil(vcpus * MB_PER_VCPU)))


def lambda_compute_usd(memory_mb: float, billed_s: float, arch: str = "x86_64", prices: Prices = DEFAULT_PRICES) -> float:
    """Compute charge of one invocation: GB x billed seconds x GB-s price."""
    _check_memory(memory_mb)
    if billed_s < 0:
        raise CostError(f"billed_s={billed_s} is negative")
    return memory_mb / 1024 * billed_s * prices.gb_second(arch)


@dataclass(frozen=True)
class CostInputs:
    """Everything a per-million-objects quote depends on."""

    memory_mb: float
    objects_per_s: float  # per invocation, steady state
    objects_per_invocation: int
    init_s: float = 0.0  # billed init per invocation (container images bill it)
    arch: str = "x86_64"
    sfn_transitions_per_invocation: float = 1.0  # the Map iteration's task state
    s3_gets_per_invocation: float = 1.0  # the shard(s) read
    s3_puts_per_invocation: float = 1.0  # the catalog written
    fixed_sfn_transitions: float = 0.0  # run-level states (init, summarize), spread over the run
    run_objects: int = PER_MILLION


def cost_per_million(inputs: CostInputs, prices: Prices = DEFAULT_PRICES) -> dict[str, Any]:
    """USD per million objects, by component, with every input and price used."""
    i = inputs
    if i.objects_per_s <= 0:
        raise CostError(f"objects_per_s={i.objects_per_s} must be > 0")
    if i.objects_per_invocation < 1:
        raise CostError(f"objects_per_invocation={i.objects_per_invocation} must be >= 1")
    if i.init_s < 0 or i.run_objects < 1:
        raise CostError(f"init_s={i.init_s} must be >= 0 and run_objects={i.run_objects} >= 1")
    billed_s = i.init_s + i.objects_per_invocation / i.objects_per_s
    invocations = PER_MILLION / i.objects_per_invocation
    compute = lambda_compute_usd(i.memory_mb, billed_s, i.arch, prices) * invocations
    requests = prices.lambda_per_request * invocations
    transitions = i.sfn_transitions_per_invocation * invocations + i.fixed_sfn_transitions * PER_MILLION / i.run_objects
    sfn = prices.sfn_per_transition * transitions
    s3 = (prices.s3_get * i.s3_gets_per_invocation + prices.s3_put * i.s3_puts_per_invocation) * invocations
    total = compute + requests + sfn + s3
    return {
        "usd_per_million_objects": total,
        "components": {"lambda_compute": compute, "lambda_requests": requests, "step_functions": sfn, "s3": s3},
        "billed_s_per_invocation": billed_s,
        "invocations_per_million": invocations,
        "vcpus": vcpus_for_memory(i.memory_mb),
        "inputs": asdict(i),
        "prices": asdict(prices),
    }


def recommend_memory(objects_per_s_by_threads: dict[int, float], min_memory_mb: float = MIN_MEMORY_MB) -> tuple[int, int]:
    """(threads, memory_mb) with the lowest GB-s per object, each thread given a full vCPU
    and never less memory than `min_memory_mb` (e.g. peak RSS plus headroom).

    Compute cost per object is memory / throughput, so a second thread only pays if it
    raises throughput more than it raises memory.
    """
    if not objects_per_s_by_threads:
        raise CostError("no throughput measurements to choose a memory size from")
    best: tuple[float, int, int] | None = None
    for threads, rate in sorted(objects_per_s_by_threads.items()):
        if rate <= 0:
            raise CostError(f"objects_per_s={rate} at {threads} thread(s) must be > 0")
        memory = max(memory_for_vcpus(min(threads, MAX_VCPU)), math.ceil(min_memory_mb))
        _check_memory(memory)
        score = memory / rate
        if best is None or score < best[0]:
            best = (score, threads, memory)
    assert best is not None
    return best[1], best[2]


def throughput_at_memory(objects_per_s_by_threads: dict[int, float], memory_mb: float) -> float:
    """Objects/s at a memory size, from rates measured at 1..k threads (one thread per vCPU share).

    Between measured thread counts the rate is interpolated linearly; below one vCPU it
    shrinks with the share; beyond the largest measured count the per-vCPU efficiency of
    that count is assumed to hold (an assumption, stated in every projection).
    """
    rates = {int(t): float(r) for t, r in objects_per_s_by_threads.items()}
    if 1 not in rates:
        raise CostError(f"throughput needs a measurement at thread count 1; got thread counts {sorted(rates)}")
    for t, r in rates.items():
        if t < 1 or r <= 0:
            raise CostError(f"objects_per_s={r} at {t} thread(s): thread counts must be >= 1 and rates > 0")
    vcpus = vcpus_for_memory(memory_mb)
    if vcpus <= 1:
        return rates[1] * vcpus
    counts = sorted(rates)
    top = counts[-1]
    if vcpus >= top:
        efficiency = rates[top] / (top * rates[1])
        rate = vcpus * rates[1] * efficiency
    else:
        lo = max(t for t in counts if t <= vcpus)
        hi = min(t for t in counts if t >= vcpus)
        rate = rates[lo] if lo == hi else rates[lo] + (rates[hi] - rates[lo]) * (vcpus - lo) / (hi - lo)
    # A worker with more vCPUs can always run the thread count that was fastest on fewer.
    return max(rate, max(r for t, r in rates.items() if t <= vcpus))


def project_run(
    *,
    objects_per_s: float,
    memory_mb: float,
    shard_objects: int,
    total_objects: int,
    concurrency: int,
    init_s: float = 0.0,
    arch: str = "x86_64",
    prices: Prices = DEFAULT_PRICES,
    fixed_sfn_transitions: float = 4.0,
) -> dict[str, Any]:
    """Projected cost and wall time of a run: one invocation per shard, `concurrency` workers.

    Cost charges init to every invocation (an upper bound: warm reuse bills less); wall time
    assumes each worker pays init once and then takes shards in waves.
    """
    if shard_objects < 1 or total_objects < 1 or concurrency < 1:
        raise CostError(f"shard_objects={shard_objects}, total_objects={total_objects}, concurrency={concurrency} must be >= 1")
    inputs = CostInputs(
        memory_mb=memory_mb,
        objects_per_s=objects_per_s,
        objects_per_invocation=shard_objects,
        init_s=init_s,
        arch=arch,
        fixed_sfn_transitions=fixed_sfn_transitions,
        run_objects=total_objects,
    )
    cost = cost_per_million(inputs, prices)
    invocations = math.ceil(total_objects / shard_objects)
    waves = math.ceil(invocations / concurrency)
    compute_s = shard_objects / objects_per_s
    return {
        "kind": "projection",
        "invocations": invocations,
        "waves": waves,
        "workers": min(invocations, concurrency),
        "billed_s_per_invocation": cost["billed_s_per_invocation"],
        "wall_s": init_s + waves * compute_s,
        "run_usd": cost["usd_per_million_objects"] * total_objects / PER_MILLION,
        "cost": cost,
        "inputs": {"total_objects": total_objects, "concurrency": concurrency, "shard_objects": shard_objects},
    }


__all__ = [
    "DEFAULT_PRICES",
    "CostError",
    "CostInputs",
    "Prices",
    "cost_per_million",
    "lambda_compute_usd",
    "memory_for_vcpus",
    "project_run",
    "recommend_memory",
    "throughput_at_memory",
    "vcpus_for_memory",
]
