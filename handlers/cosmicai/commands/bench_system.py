"""`cosmicai bench-system`: the system benchmark behind `make bench` (bench/results.json, REPORT.md, plots).

Worker path on S3 (LocalStack through AWS_ENDPOINT_URL) vs the reference-style loop, per precision,
batch size and thread count; cold start; end-to-end runs of a deployed state machine (when given);
AWS projections and the recommended memory, batch size and shard size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the bench-system parser."""
    p = subparsers.add_parser(
        "bench-system",
        help="system benchmark: worker path, cold start, end-to-end, projections -> bench/",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--out", type=Path, default=Path("bench"), help="folder for results.json, REPORT.md and plots (default bench/)"
    )
    p.add_argument(
        "--bucket", help="S3 bucket for the worker-path shards (created if missing); needs AWS_ENDPOINT_URL or AWS"
    )
    p.add_argument(
        "--weights",
        type=Path,
        help="safetensors weights (default: COSMICAI_WEIGHTS / packaged demo weights, else random seed 0)",
    )
    p.add_argument("--objects", type=int, default=1024, help="objects per timed worker-path run (default 1024)")
    p.add_argument("--batch-sizes", default="32,64,128,256,512,1024", help="batch sizes swept at one thread")
    p.add_argument("--threads", default="1,2", help="thread counts (the first is swept over batch sizes)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each runner is kept")
    p.add_argument("--state-machine-arn", help="deployed state machine for the end-to-end runs (skipped without it)")
    p.add_argument("--data-uri", help="s3://bucket/prefix/ where the end-to-end runs upload their shards")
    p.add_argument("--results-uri", help="s3://bucket/prefix/ for the end-to-end runs' outputs")
    p.add_argument(
        "--infer-log-group", help="log group of the infer function (cold-start REPORT lines of the end-to-end runs)"
    )
    p.add_argument(
        "--e2e-objects",
        type=int,
        default=2048,
        help="objects per end-to-end run, at least one shard (default 2048: minutes, not hours, on 2 shared cores)",
    )
    p.add_argument("--e2e-shard-mb", default="10,25,50,100", help="shard sizes of the end-to-end sweep")
    p.add_argument(
        "--e2e-target",
        default="16x2048",
        metavar="SHARDSxOBJECTS",
        help="the overhead case, run at the highest concurrency (default 16x2048, issue 8)",
    )
    p.add_argument("--e2e-concurrency", default="2,4", help="two concurrency levels of the end-to-end sweep")
    p.add_argument(
        "--from-stack-env",
        action="store_true",
        help="take the state machine, data/results URIs and infer log group from COSMICAI_TF_* (make bench runs "
        "it under `deploy.stack exec`)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="re-render REPORT.md and plots from an existing results.json"
    )
    p.set_defaults(run=run)


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise SystemExit(f"bench-system: {option} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise SystemExit(f"bench-system: {option} needs integers >= 1, got {text!r}")
    return vals


def e2e_target(text: str) -> tuple[int, int]:
    """--e2e-target SHARDSxOBJECTS as (shards, objects per shard); exactly two integers."""
    vals = _ints(text.replace("x", ","), "--e2e-target")
    if len(vals) != 2:
        raise SystemExit(f"bench-system: --e2e-target is SHARDSxOBJECTS (two integers), got {text!r}")
    return vals[0], vals[1]


def _model_and_weights(arg: Path | None, tmp: Path) -> tuple[Any, Path, str]:
    """(model, weights file, description): the given or packaged weights, else random weights (seed 0)."""
    import torch

    from cosmicai.model import AstroMAE
    from cosmicai.weights import WeightsNotFoundError, default_weights_path, load_model, save_weights

    try:
        path = arg or default_weights_path()
        if path.exists():
            return load_model(path), path, str(path)
    except WeightsNotFoundError:
        pass
    torch.manual_seed(0)
    model = AstroMAE().eval()
    path = tmp / "random-seed0.safetensors"
    save_weights(model, path)
    return model, path, "random weights (torch seed 0; no trained weights present)"


def _machine() -> dict[str, Any]:
    import torch

    from cosmicai.engine import available_cpus
    from cosmicai.procstats import ISA_OF_INTEREST, cpu_info

    model, flags = cpu_info()
    isa = sorted(flags & ISA_OF_INTEREST)
    return {
        "cpu_model": model,
        "cpu_isa": isa,
        "cpus_available": available_cpus(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_avg_start": round(os.getloadavg()[0], 2),
    }


def _s3_bucket(bucket: str) -> Any:
    from cosmicai.runstore import s3_client

    s3 = s3_client()
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:  # absent (404) or not yet visible: create it; a real permission problem fails on create
        s3.create_bucket(Bucket=bucket)
    return s3


def local_bill(run_id: str, output: str, log_groups: list[str]) -> dict[str, Any]:
    """The bill of one end-to-end run from its REPORT lines (`cosmicai costs --run-id`), as JSON."""
    from cosmicai.commands.costs import collect

    args = argparse.Namespace(
        logs=log_groups, start=None, end=None, output=output, run_id=run_id, arch=None, objects=None, projection=None
    )
    bill = collect(args)
    return {
        "run_id": run_id,
        "invocations": bill["invocations"],
        "billed_gb_seconds": round(bill["billed_gb_seconds"], 3),
        "usd_total": round(bill["usd_total"], 6),
        "usd_per_million_objects": round(bill.get("usd_per_million_objects") or 0, 4),
        "objects": bill.get("objects"),
        "groups": [
            {
                k: g[k]
                for k in (
                    "log_group",
                    "invocations",
                    "cold_starts",
                    "memory_sizes_mb",
                    "billed_seconds",
                    "billed_gb_seconds",
                    "filtered_by",
                )
            }
            | {"usd": round(g["usd"]["total"], 6)}
            for g in bill["groups"]
        ],
    }


def apply_stack_env(args: argparse.Namespace, env: dict[str, str] | None = None) -> None:
    """Fill the end-to-end options from the deployed stack's outputs (COSMICAI_TF_* variables)."""
    env = dict(os.environ if env is None else env)
    missing = [
        k
        for k in ("COSMICAI_TF_STATE_MACHINE_ARN", "COSMICAI_TF_DATA_URI", "COSMICAI_TF_RESULTS_URI")
        if not env.get(k)
    ]
    if missing:
        raise SystemExit(
            f"bench-system --from-stack-env: {', '.join(missing)} not set "
            "(run under `deploy.stack exec`, i.e. make bench)"
        )
    args.state_machine_arn = args.state_machine_arn or env["COSMICAI_TF_STATE_MACHINE_ARN"]
    args.data_uri = args.data_uri or env["COSMICAI_TF_DATA_URI"]
    args.results_uri = args.results_uri or env["COSMICAI_TF_RESULTS_URI"]
    groups = json.loads(env.get("COSMICAI_TF_LOG_GROUP_NAMES") or "{}")
    args.infer_log_group = args.infer_log_group or groups.get("infer")
    args.log_groups = [g for role, g in sorted(groups.items()) if role != "state_machine"]
    if not args.bucket:
        from cosmicai.payload import split_s3_uri

        args.bucket = split_s3_uri(args.data_uri, "data_uri")[0]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run every part that can run here; a part that cannot says why in `not_measured`."""
    import logging

    from cosmicai.perf import coldstart, report, worker_path
    from cosmicai.perf.scale import synthetic_shard

    logging.getLogger("cosmicai.worker").setLevel(
        logging.WARNING
    )  # one JSON line per shard would bury the progress lines

    results: dict[str, Any] = {
        "kind": "cosmicai system benchmark",
        "created_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": _machine(),
        "command": " ".join(sys.argv),
    }
    tmp = Path(tempfile.mkdtemp(prefix="cosmicai-bench-"))
    model, weights, wdesc = _model_and_weights(args.weights, tmp)
    results["weights"] = wdesc
    results["data"] = f"synthetic inputs ({args.objects} objects, SDSS-like ranges, seed 1)"
    cfg = worker_path.WorkerBenchConfig(
        batch_sizes=_ints(args.batch_sizes, "--batch-sizes"),
        threads=_ints(args.threads, "--threads"),
        rounds=args.rounds,
    )
    if not args.bucket:
        results["worker_path"] = {"not_measured": "no --bucket given (make bench passes BENCH_BUCKET)"}
    else:
        s3 = _s3_bucket(args.bucket)
        bench = worker_path.WorkerPathBench(
            s3, args.bucket, f"bench-{int(time.time())}/", model, synthetic_shard(args.objects)
        )
        wp = bench.measure(cfg, progress=lambda s: print(s, flush=True))
        wp["endpoint"] = os.environ.get("AWS_ENDPOINT_URL") or "AWS"
        wp["thread_scaling"] = worker_path.thread_scaling(wp["rows"], cfg.scaling_batch)
        results["worker_path"] = wp
    rows = (results["worker_path"] or {}).get("rows") or []
    best = report.best_accurate(rows)
    mode, batch = (best["runner"], best["batch_size"]) if best else ("fp32", 512)
    probes = []
    for p in dict.fromkeys(["fp32", mode]):
        print(f"cold-start probe {p} ...", flush=True)
        probes.append(coldstart.probe_cold_start(weights, p, batch))
    results["cold_start"] = {"probe": probes}
    if args.state_machine_arn and args.data_uri and args.results_uri:
        from cosmicai.perf import end_to_end

        results["end_to_end"] = end_to_end.sweep(
            args.state_machine_arn,
            args.data_uri,
            args.results_uri,
            total_objects=args.e2e_objects,
            shard_mb=_ints(args.e2e_shard_mb, "--e2e-shard-mb"),
            concurrency=_ints(args.e2e_concurrency, "--e2e-concurrency"),
            precision=mode,
            batch_size=batch,
            target=e2e_target(args.e2e_target),
            progress=lambda s: print(s, flush=True),
        )
        results["cold_start"] |= end_to_end.local_cold_start(results["end_to_end"], args.infer_log_group)
        target = results["end_to_end"].get("target_run")
        if target and getattr(args, "log_groups", None):
            results["local_bill"] = local_bill(target["run_id"], target["output"], args.log_groups)
    else:
        results["end_to_end"] = {
            "not_measured": "no deployed state machine given (--state-machine-arn, --data-uri, --results-uri)"
        }
        results["cold_start"]["local_cloud_not_measured"] = "needs the end-to-end runs"
    results["machine"]["load_avg_end"] = round(os.getloadavg()[0], 2)
    return derive(results)


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """Projection, recommendation and targets from the measured parts (also used by --report-only)."""
    from cosmicai.perf import projection, report

    probes = (results.get("cold_start") or {}).get("probe") or []
    if probes:
        rss = max(p["peak_rss_mb"] for p in probes)
        # Headroom: 25% over the measured peak plus three copies of a 100 MB shard (bytes, arrays, catalog).
        min_mem = 1.25 * rss + 300
        results["projection"] = projection.derive_projection(results, min_mem)
        host = results["projection"]["classes"]["host"]
        if "recommendation" in host:
            results["recommendation"] = host["recommendation"] | {"min_memory_mb": round(min_mem), "peak_rss_mb": rss}
    results["targets"] = report.targets(results)
    return results


def run(args: argparse.Namespace) -> int:
    """Measure (or re-read results.json), write REPORT.md and plots, print the targets."""
    from cosmicai.perf.report import write_report

    out: Path = args.out
    path = out / "results.json"
    if args.from_stack_env and not args.report_only:
        apply_stack_env(args)
    if args.report_only:
        results = derive(json.loads(path.read_text()))
    else:
        results = measure(args)
        out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    report_path = write_report(results, out)
    for name, t in results["targets"].items():
        print(f"{name}: {t['value']} (target {t['target']}): {t['detail']}")
    print(f"wrote {path} and {report_path}")
    return 0
