"""Projected AWS cost and wall time of the reference's 12.6 GB run, and the recommendation made from them.

Every row is a projection: measured objects/s per thread on this machine, scaled to a Lambda
memory size by `costs.throughput_at_memory`, priced by `costs.project_run`. The inputs and
assumptions travel with the rows.
"""

from __future__ import annotations

from typing import Any

from cosmicai.costs import DEFAULT_PRICES, Prices, project_run, throughput_at_memory

REFERENCE_OBJECTS = 659_817  # the reference's 12.6 GB data set
REFERENCE_USD_PER_MILLION = 1.78  # from its own logs (REFERENCE.md section 3)
OBJECTS_PER_100MB = 5113  # a 100 MB partition, as in the reference
MEMORY_SIZES_MB = (1769, 2048, 3008, 3538, 5307, 7076, 8847, 10240)
SHARD_MB = (10, 25, 50, 100)
ARCHES = ("x86_64", "arm64")
CONCURRENCY = 1000
NEAR_CHEAPEST = 1.05  # configurations within 5% of the cheapest compete on wall time

ASSUMPTIONS = (
    "objects/s per vCPU on Lambda equals objects/s per thread measured here (x86_64 and arm64 alike; arm64 not measured)",
    "beyond the measured thread counts, the per-vCPU efficiency of the largest measured count holds",
    "every invocation is billed the measured init (upper bound: warm reuse bills less); wall time pays init once per worker",
    "one invocation per shard; shards processed in waves of `concurrency` workers",
    "Step Functions: one transition per invocation plus 4 run-level states; S3: one GET and one PUT per invocation",
)


def shard_objects(shard_mb: float) -> int:
    """Objects in a shard of `shard_mb` MB (5,113 per 100 MB, as the reference's partitions)."""
    return max(1, round(OBJECTS_PER_100MB * shard_mb / 100))


def projection_grid(
    rates_by_threads: dict[int, float],
    init_s: float,
    *,
    total_objects: int = REFERENCE_OBJECTS,
    concurrency: int = CONCURRENCY,
    memory_sizes: tuple[int, ...] = MEMORY_SIZES_MB,
    shard_mb: tuple[int, ...] = SHARD_MB,
    prices: Prices = DEFAULT_PRICES,
) -> list[dict[str, Any]]:
    """One row per (arch, memory, shard size): objects/s, USD per million, run USD, wall seconds."""
    rows = []
    for arch in ARCHES:
        for memory in memory_sizes:
            rate = throughput_at_memory(rates_by_threads, memory)
            for mb in shard_mb:
                p = project_run(
                    objects_per_s=rate, memory_mb=memory, shard_objects=shard_objects(mb),
                    total_objects=total_objects, concurrency=concurrency, init_s=init_s, arch=arch, prices=prices,
                )
                rows.append({
                    "arch": arch,
                    "memory_mb": memory,
                    "vcpus": round(p["cost"]["vcpus"], 3),
                    "shard_mb": mb,
                    "shard_objects": shard_objects(mb),
                    "objects_per_s": round(rate, 2),
                    "invocations": p["invocations"],
                    "waves": p["waves"],
                    "billed_s_per_invocation": round(p["billed_s_per_invocation"], 3),
                    "usd_per_million_objects": round(p["cost"]["usd_per_million_objects"], 5),
                    "components_per_million": {k: round(v, 6) for k, v in p["cost"]["components"].items()},
                    "run_usd": round(p["run_usd"], 4),
                    "wall_s": round(p["wall_s"], 2),
                })
    return rows


def recommend(rows: list[dict[str, Any]], arch: str = "x86_64", min_memory_mb: float = 0.0) -> dict[str, Any]:
    """The cheapest (memory, shard size) for `arch`; among those within 5% of it, the shortest wall time."""
    fits = [r for r in rows if r["arch"] == arch and r["memory_mb"] >= min_memory_mb]
    if not fits:
        raise ValueError(f"no projection row for arch {arch!r} with memory >= {min_memory_mb} MB")
    cheapest = min(r["usd_per_million_objects"] for r in fits)
    near = [r for r in fits if r["usd_per_million_objects"] <= cheapest * NEAR_CHEAPEST]
    best = min(near, key=lambda r: (r["wall_s"], r["usd_per_million_objects"]))
    return {
        "rule": f"cheapest per million objects for {arch} with memory >= {min_memory_mb:.0f} MB; "
        f"among rows within {NEAR_CHEAPEST - 1:.0%} of it, the shortest projected wall time",
        "memory_mb": best["memory_mb"],
        "shard_mb": best["shard_mb"],
        "row": best,
    }


def rate_for_cost(target_usd: float, init_s: float, memory_mb: int = 1769, shard_mb: int = 100, arch: str = "x86_64") -> float:
    """Objects/s per invocation needed for `target_usd` per million objects (all charges), by bisection."""
    def usd(rate: float) -> float:
        return project_run(objects_per_s=rate, memory_mb=memory_mb, shard_objects=shard_objects(shard_mb), total_objects=REFERENCE_OBJECTS,
                           concurrency=CONCURRENCY, init_s=init_s, arch=arch)["cost"]["usd_per_million_objects"]

    lo, hi = 1.0, 1e6
    if usd(hi) > target_usd:
        return float("inf")  # init and fixed charges alone exceed the target
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if usd(mid) > target_usd else (lo, mid)
    return hi


def projection_inputs(rates_by_threads: dict[int, float], init_s: float, mode: str, batch_size: int) -> dict[str, Any]:
    """The measured inputs and stated assumptions behind every projection row."""
    return {
        "kind": "projection (not a bill)",
        "mode": mode,
        "batch_size": batch_size,
        "objects_per_s_by_threads": {str(k): v for k, v in sorted(rates_by_threads.items())},
        "init_s": init_s,
        "total_objects": REFERENCE_OBJECTS,
        "concurrency": CONCURRENCY,
        "prices": DEFAULT_PRICES.__dict__,
        "assumptions": list(ASSUMPTIONS),
        "reference_usd_per_million": REFERENCE_USD_PER_MILLION,
    }


__all__ = [
    "ASSUMPTIONS",
    "MEMORY_SIZES_MB",
    "REFERENCE_OBJECTS",
    "REFERENCE_USD_PER_MILLION",
    "SHARD_MB",
    "projection_grid",
    "projection_inputs",
    "rate_for_cost",
    "recommend",
    "shard_objects",
]
