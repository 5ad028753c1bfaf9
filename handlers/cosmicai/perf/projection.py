"""Projected AWS bill and wall time of the reference's 12.6 GB run, the recommendation made from
them, and what the same worker would cost on EC2 / AWS Batch.

Every row is a projection: measured objects/s per thread on the bench machine, scaled to a Lambda
memory size by `costs.throughput_at_memory`, priced by `costs.project_run` (every charge counted
by `costs.run_bill`). The inputs and assumptions travel with the rows.

Two CPU classes: rows of `worker_path.rows` and `cold_start.probe` may carry `"cpu_class"`
(`"host"` when absent; `"avx2"` for runs with the CPU capped to AVX2, Lambda's documented x86_64
baseline). `derive_projection` projects each class that has a measurement and says
"not measured" for one that has none.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from cosmicai.costs import (
    DEFAULT_PRICES,
    S3_MB_PER_S,
    S3_REQUEST_S,
    Prices,
    Rates,
    project_run,
    throughput_at_memory,
)
from cosmicai.plan import min_shards_per_item

REFERENCE_OBJECTS = 659_817  # the reference's 12.6 GB data set
REFERENCE_USD_PER_MILLION = 1.78  # from its own logs (REFERENCE.md section 3)
OBJECTS_PER_100MB = 5113  # a 100 MB partition, as in the reference
MEMORY_SIZES_MB = (1769, 2048, 3008, 3538, 5307, 7076, 8847, 10240)
SHARD_MB = (10, 25, 50, 100, 200)
SHARDS_PER_ITEM = (1, 2, 4, 8, 16)  # the payload's shards_per_worker
ARCHES = ("x86_64", "arm64")
CONCURRENCY = 1000
NEAR_CHEAPEST = 1.05  # configurations within 5% of the cheapest compete on wall time
# An item must end well inside the infer function's 900 s timeout (terraform infer_timeout_s).
ITEM_LIMIT_S = 600.0
# The worker refuses a shard over a third of (memory - 512 MB) (worker.max_shard_bytes).
WORKER_BASE_MEMORY_MB = 512
CPU_CLASSES = ("host", "avx2")
BILLION = 1_000_000_000

ASSUMPTIONS = (
    "objects/s per vCPU on Lambda equals the worker path's objects per wall second at one thread measured on the "
    "bench machine (x86_64 and arm64 alike; arm64 not measured); Lambda bills wall time",
    "beyond the measured thread counts, the per-vCPU efficiency of the largest measured count holds",
    f"each shard is downloaded at {S3_MB_PER_S:g} MB/s plus {S3_REQUEST_S * 1000:.0f} ms a request (one GET stream "
    "from Lambda; costs.S3_MB_PER_S), the first shard of an item in full and later ones behind the previous compute",
    "INIT is billed once per worker: min(work items, concurrency) cold starts, later items reuse an idle environment",
    "Step Functions, S3 requests, CloudWatch Logs, Init and Summarize: counted by costs.run_bill from the code and "
    "the ASL, at the stack's default log levels (functions INFO, execution logs ERROR)",
)


def shard_objects(shard_mb: float) -> int:
    """Objects in a shard of `shard_mb` MB (5,113 per 100 MB, as the reference's partitions)."""
    return max(1, round(OBJECTS_PER_100MB * shard_mb / 100))


def shard_fits(shard_mb: float, memory_mb: float) -> bool:
    """Whether the worker at `memory_mb` accepts a shard of `shard_mb` MB (worker.max_shard_bytes)."""
    return shard_mb * 1_000_000 <= (memory_mb - WORKER_BASE_MEMORY_MB) * 1024 * 1024 // 3


def projection_grid(
    rates_by_threads: dict[int, float],
    init_s: float,
    *,
    total_objects: int = REFERENCE_OBJECTS,
    concurrency: int = CONCURRENCY,
    memory_sizes: tuple[int, ...] = MEMORY_SIZES_MB,
    shard_mb: tuple[int, ...] = SHARD_MB,
    shards_per_item: tuple[int, ...] = SHARDS_PER_ITEM,
    prices: Prices = DEFAULT_PRICES,
) -> list[dict[str, Any]]:
    """One row per (arch, memory, shard size, shards per item) that the worker accepts and that ends
    within ITEM_LIMIT_S: objects/s, USD per million by component, run USD, wall seconds."""
    rows = []
    for arch in ARCHES:
        for memory in memory_sizes:
            rate = throughput_at_memory(rates_by_threads, memory)
            for mb in shard_mb:
                if not shard_fits(mb, memory):
                    continue
                for per_item in shards_per_item:
                    p = project_run(
                        objects_per_s=rate,
                        memory_mb=memory,
                        shard_objects=shard_objects(mb),
                        total_objects=total_objects,
                        concurrency=concurrency,
                        init_s=init_s,
                        arch=arch,
                        prices=prices,
                        shards_per_item=per_item,
                    )
                    if p["billed_s_per_invocation"] > ITEM_LIMIT_S or (per_item > 1 and p["shards"] <= per_item // 2):
                        continue  # over the time limit, or more shards per item than the run has
                    rows.append(
                        {
                            "arch": arch,
                            "memory_mb": memory,
                            "vcpus": round(p["cost"]["vcpus"], 3),
                            "shard_mb": mb,
                            "shard_objects": shard_objects(mb),
                            "shards_per_item": per_item,
                            "objects_per_s": round(rate, 2),
                            "invocations": p["invocations"],
                            "waves": p["waves"],
                            "billed_s_per_invocation": round(p["billed_s_per_invocation"], 3),
                            "usd_per_million_objects": round(p["cost"]["usd_per_million_objects"], 5),
                            "components_per_million": {k: round(v, 6) for k, v in p["cost"]["components"].items()},
                            "run_usd": round(p["run_usd"], 4),
                            "wall_s": round(p["wall_s"], 2),
                        }
                    )
    return rows


def recommend(rows: list[dict[str, Any]], arch: str = "x86_64", min_memory_mb: float = 0.0) -> dict[str, Any]:
    """The cheapest (memory, shard size, shards per item) for `arch`; among those within 5% of it,
    the shortest wall time."""
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
        "shards_per_item": best.get("shards_per_item", 1),
        "row": best,
    }


def rate_for_cost(
    target_usd: float,
    init_s: float,
    memory_mb: int = 1769,
    shard_mb: int = 100,
    arch: str = "x86_64",
    shards_per_item: int = 1,
) -> float:
    """Objects/s per invocation needed for `target_usd` per million objects (all charges), by bisection."""

    def usd(rate: float) -> float:
        p = project_run(
            objects_per_s=rate,
            memory_mb=memory_mb,
            shard_objects=shard_objects(shard_mb),
            total_objects=REFERENCE_OBJECTS,
            concurrency=CONCURRENCY,
            init_s=init_s,
            arch=arch,
            shards_per_item=shards_per_item,
        )
        return float(p["cost"]["usd_per_million_objects"])

    lo, hi = 1.0, 1e6
    if usd(hi) > target_usd:
        return float("inf")  # init and fixed charges alone exceed the target
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if usd(mid) > target_usd else (lo, mid)
    return hi


@dataclass(frozen=True)
class Instance:
    """An EC2 instance to run the same worker on (AWS Batch adds no charge of its own)."""

    name: str
    vcpus: int
    memory_gib: float
    on_demand_usd_h: float
    spot_usd_h: float
    cpu: str
    source: str
    startup_s: float = 120.0  # assumption: boot, image pull and engine INIT before the first shard


# The EC2 instance like the bench machine: AMD EPYC 4th gen (Zen 4: AVX-512, VNNI, BF16), one physical
# core per vCPU (no SMT on c7a), so a vCPU does what one core of the bench did.
C7A_LARGE = Instance(
    name="c7a.large",
    vcpus=2,
    memory_gib=4.0,
    on_demand_usd_h=0.10264,
    spot_usd_h=round(0.10264 * 0.35, 5),
    cpu="AMD EPYC 9R14 (Zen 4), one core per vCPU",
    source="on-demand: AWS's EC2 on-demand list price for c7a.large, us-east-1 Linux, $0.10264/h (its price since "
    "c7a's launch in 2023; not re-read on 2026-11-30, this machine is offline; an independent public instance "
    "catalogue lists $0.1027); spot: an assumption of 35% of on-demand (spot prices move hourly: check "
    "`aws ec2 describe-spot-price-history --instance-types c7a.large`); AWS Batch: no charge beyond EC2 "
    "(aws.amazon.com/batch/pricing); EC2 bills per second with a 60 s minimum",
)


def ec2_comparison(
    rate_per_core: float,
    lambda_usd_per_million: float,
    *,
    instance: Instance = C7A_LARGE,
    total_objects: int = REFERENCE_OBJECTS,
    s3_usd_per_million: float = 0.0,
    lambda_wall_s: float | None = None,
) -> dict[str, Any]:
    """What the same worker costs on EC2/AWS Batch at `rate_per_core` objects/s per vCPU, and when it
    is cheaper than Lambda's `lambda_usd_per_million` (every charge).

    A fleet that is busy a fraction u of the time it is paid for costs (hourly price / objects per
    hour) / u per object; it is cheaper than Lambda above the break-even utilisation. One instance
    running a run of N objects pays its start-up too: it is cheaper than Lambda above the
    break-even run size. `s3_usd_per_million` (the shard GETs and catalog PUTs, which a batch job
    makes too) is added to both EC2 figures.
    """
    per_hour = rate_per_core * instance.vcpus * 3600
    out: dict[str, Any] = {
        "instance": asdict(instance),
        "objects_per_hour": round(per_hour),
        "lambda_usd_per_million": lambda_usd_per_million,
        "s3_usd_per_million": s3_usd_per_million,
        "lambda_wall_s": lambda_wall_s,
    }
    for kind, price in (("on_demand", instance.on_demand_usd_h), ("spot", instance.spot_usd_h)):
        full = price / per_hour * 1e6 + s3_usd_per_million
        marginal = lambda_usd_per_million - s3_usd_per_million  # what Lambda charges beyond the S3 requests
        startup_usd = price * max(60.0, instance.startup_s) / 3600
        run_wall = instance.startup_s + total_objects / (per_hour / 3600)
        run_usd = price * max(60.0, run_wall) / 3600 + s3_usd_per_million * total_objects / 1e6
        break_even_run = (
            startup_usd / ((marginal - (full - s3_usd_per_million)) / 1e6)
            if marginal > full - s3_usd_per_million
            else math.inf
        )
        out[kind] = {
            "usd_h": price,
            "usd_per_million_full_use": round(full, 5),
            "break_even_utilisation": round((full - s3_usd_per_million) / marginal, 3) if marginal > 0 else None,
            "one_instance_run": {
                "objects": total_objects,
                "wall_s": round(run_wall),
                "usd": round(run_usd, 5),
                "usd_per_million": round(run_usd * 1e6 / total_objects, 5),
            },
            "break_even_objects_one_instance": None if math.isinf(break_even_run) else round(break_even_run),
        }
    return out


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
        "prices": asdict(DEFAULT_PRICES),
        "assumptions": list(ASSUMPTIONS),
        "reference_usd_per_million": REFERENCE_USD_PER_MILLION,
    }


def _of_class(items: list[dict[str, Any]], cpu_class: str) -> list[dict[str, Any]]:
    return [r for r in items if r.get("cpu_class", "host") == cpu_class]


def class_projection(results: dict[str, Any], cpu_class: str, min_memory_mb: float) -> dict[str, Any]:
    """The projection of one CPU class from bench results: the fastest mode within 2e-3 of fp32 at one
    thread (its wall rate, its init), the grid, the recommendation, sensitivities and the EC2 comparison."""
    from cosmicai.perf.report import best_accurate

    wp = results.get("worker_path") or {}
    rows = _of_class(wp.get("rows") or [], cpu_class)
    probes = _of_class((results.get("cold_start") or {}).get("probe") or [], cpu_class)
    best = best_accurate(rows)
    if not best or not probes:
        return {
            "cpu_class": cpu_class,
            "not_measured": f"bench/results.json has no {cpu_class} worker-path rows and cold-start probes"
            if not rows
            else f"no {cpu_class} mode within 2e-3 of fp32, or no cold-start probe",
        }
    mode, batch = best["runner"], best["batch_size"]
    init_s = next((p["first_prediction_s"] for p in probes if p["precision"] == mode), probes[0]["first_prediction_s"])
    rate1 = best["objects_per_s"]  # wall seconds: Lambda bills wall time
    # thread scaling is measured on the host class only
    eff = ((wp.get("thread_scaling") or {}).get(mode) or {}).get("efficiency_t2") if cpu_class == "host" else None
    rates = {1: rate1} | ({2: 2 * rate1 * eff} if eff else {})
    grid = projection_grid(rates, init_s)
    rec = recommend(grid, "x86_64", min_memory_mb=min_memory_mb)
    one_per_item = recommend([r for r in grid if r["shards_per_item"] == 1], "x86_64", min_memory_mb=min_memory_mb)
    r = rec["row"]
    s3_per_m = r["components_per_million"]["s3_requests"]
    sens = {}
    local_init = ((results.get("cold_start") or {}).get("local_cloud_report_init_ms") or {}).get("mean")
    variants = [
        (
            "S3 at half the throughput",
            Rates(objects_per_s=r["objects_per_s"], init_s=init_s, s3_mb_per_s=S3_MB_PER_S / 2),
        )
    ]
    if local_init:
        variants.append(
            ("init as the local cloud's REPORT mean", Rates(objects_per_s=r["objects_per_s"], init_s=local_init / 1000))
        )
    for name, variant in variants:
        p = project_run(
            objects_per_s=r["objects_per_s"],
            memory_mb=r["memory_mb"],
            shard_objects=r["shard_objects"],
            total_objects=REFERENCE_OBJECTS,
            concurrency=CONCURRENCY,
            init_s=variant.init_s,
            shards_per_item=r["shards_per_item"],
            rates=variant,
        )
        sens[name] = {
            "init_s": variant.init_s,
            "s3_mb_per_s": variant.s3_mb_per_s,
            "usd_per_million_objects": round(p["cost"]["usd_per_million_objects"], 5),
        }
    # Survey scale: 10^9 objects at the recommended row, in as few items as one run's Map allows
    per_item = max(r["shards_per_item"], min_shards_per_item(math.ceil(BILLION / r["shard_objects"])))
    big = project_run(
        objects_per_s=r["objects_per_s"],
        memory_mb=r["memory_mb"],
        shard_objects=r["shard_objects"],
        total_objects=BILLION,
        concurrency=CONCURRENCY,
        init_s=init_s,
        shards_per_item=per_item,
    )
    billion = {
        "objects": BILLION,
        "shards_per_item": per_item,
        "items": big["invocations"],
        "concurrency": CONCURRENCY,
        "waves": big["waves"],
        "wall_s": round(big["wall_s"], 1),
        "run_usd": round(big["run_usd"], 2),
        "usd_per_million_objects": round(big["cost"]["usd_per_million_objects"], 5),
    }
    return {
        "cpu_class": cpu_class,
        "inputs": projection_inputs(rates, init_s, mode, batch),
        "billion": billion,
        "rows": grid,
        "recommendation": rec | {"batch_size": batch, "precision": mode, "threads": 1},
        "recommendation_one_shard_per_item": one_per_item,
        "sensitivity": sens,
        "ec2": ec2_comparison(
            rate1, r["usd_per_million_objects"], s3_usd_per_million=s3_per_m, lambda_wall_s=r["wall_s"]
        ),
    }


def derive_projection(results: dict[str, Any], min_memory_mb: float) -> dict[str, Any]:
    """results.json's `projection`: the host class (rows, inputs, EC2) at the top level, every class under `classes`."""
    classes = {c: class_projection(results, c, min_memory_mb) for c in CPU_CLASSES}
    host = classes["host"]
    if "not_measured" in host:
        return {"classes": classes}
    init_s = host["inputs"]["init_s"]
    rows = host.pop("rows")  # kept once, at the top level
    rec = host["recommendation"]
    return {
        "inputs": host["inputs"],
        "rows": rows,
        "classes": classes,
        "rate_for_target_0040_recommended": round(
            rate_for_cost(0.040, init_s, rec["memory_mb"], rec["shard_mb"], shards_per_item=rec["shards_per_item"]), 1
        ),
        "rate_for_target_x86_1769mb_100mb": round(rate_for_cost(0.10, init_s), 1),
        "rate_for_target_x86_1769mb_100mb_no_init": round(rate_for_cost(0.10, 0.0), 1),
    }


__all__ = [
    "ASSUMPTIONS",
    "C7A_LARGE",
    "CPU_CLASSES",
    "MEMORY_SIZES_MB",
    "REFERENCE_OBJECTS",
    "REFERENCE_USD_PER_MILLION",
    "SHARD_MB",
    "SHARDS_PER_ITEM",
    "Instance",
    "class_projection",
    "derive_projection",
    "ec2_comparison",
    "projection_grid",
    "projection_inputs",
    "rate_for_cost",
    "recommend",
    "shard_fits",
    "shard_objects",
]
