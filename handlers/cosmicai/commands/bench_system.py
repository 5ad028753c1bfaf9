"""`cosmicai bench-system`: the system benchmark behind `make bench` (bench/results.json, REPORT.md, plots).

Worker path on S3 (LocalStack through AWS_ENDPOINT_URL) vs the reference-style loop, per backend
(torch and OpenVINO side by side), precision, batch size and thread count; cold start; `cosmicai
predict` as a whole process against a plain eager process; end-to-end runs of a deployed state
machine (when given); AWS projections and the recommended memory, batch size and shard size.

Two CPU classes (`--cpu-classes host,avx2`): the host as is, and the same worker path and cold start
in a child process with the libraries capped to AVX2 (Lambda's documented x86_64 baseline):
ATen `ATEN_CPU_CAPABILITY=avx2`, oneDNN `ONEDNN_MAX_CPU_ISA=AVX2` (torch's and OpenVINO's), MKL
`MKL_ENABLE_INSTRUCTIONS=AVX2`, and the CPU class `fast` sees (`COSMICAI_CPU_FEATURES=avx2,fma`).
What no cap reaches is not measured: torch int8 (fbgemm keeps its VNNI kernels), torch bf16 (emulated
under the cap, as on an AVX2 CPU, but not a mode anyone would run there) and OpenVINO bf16 (its
plugin compiles f32 without native bf16; under the cap it fails to compile Softmax). OpenVINO's own
kernels for LayerNorm (MVN), reductions and FakeQuantize and its MLAS matmuls keep AVX-512 under the
cap: their share of the time is measured (`openvino_isa_profile`) and stated with the rows.

Parts not measured in this run (the end-to-end runs without a deployed stack) are carried over from
the previous results.json with the run they came from (`sections_from`).
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
    p.add_argument(
        "--backends",
        default="torch,openvino",
        help="engine backends in the worker path and cold start (default torch,openvino; openvino needs the "
        "openvino package: its IR, qualification and compiled blobs are written next to a copy of the weights)",
    )
    p.add_argument(
        "--cpu-classes",
        default="host,avx2",
        help="CPU classes: host (as is) and avx2 (a child process with the libraries capped; default host,avx2)",
    )
    p.add_argument("--coldstart-rounds", type=int, default=3, help="fresh processes per cold-start probe (median)")
    p.add_argument(
        "--whole-process-objects",
        type=int,
        default=4096,
        help="objects of the whole-process predict vs plain eager comparison (0 skips it; default 4096)",
    )
    p.add_argument(
        "--no-keep-previous",
        action="store_true",
        help="do not carry parts this run does not measure over from the previous results.json",
    )
    p.add_argument("--class-child", help=argparse.SUPPRESS)  # internal: measure one capped CPU class
    p.add_argument("--class-out", type=Path, help=argparse.SUPPRESS)
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
    out: dict[str, Any] = {
        "cpu_model": model,
        "cpu_isa": isa,
        "cpus_available": available_cpus(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "load_avg_start": round(os.getloadavg()[0], 2),
    }
    try:
        from cosmicai.engine_openvino import openvino_version

        out["openvino"] = openvino_version()
    except ImportError:
        pass
    return out


# The AVX2 cap of every library that honours one, and the CPU class `fast` then sees.
AVX2_CAP_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "COSMICAI_CPU_FEATURES": "avx2,fma",
}
# What the cap cannot reach, reported as not measured in the avx2 class.
AVX2_NOT_MEASURED = {
    "int8": "torch int8: fbgemm ignores ATEN_CPU_CAPABILITY and ONEDNN_MAX_CPU_ISA and keeps its VNNI kernels",
    "bf16": "torch bf16: no native bf16 on an AVX2 CPU (oneDNN emulates it, slower than fp32): not a mode to run there",
    "openvino-bf16": "OpenVINO bf16: without native bf16 the plugin compiles it f32 (the openvino-fp32 row); under "
    "ONEDNN_MAX_CPU_ISA=AVX2 it fails to compile Softmax (no primitive descriptor)",
}


# The compiled parts the inference image ships (images/inference.Dockerfile's export-compiled).
IMAGE_BLOB_PARTS = ("embed", "blocks", "blocks_int8")


def engine_files(weights: Path, tmp: Path) -> tuple[Path, Path]:
    """(weights with their engine files, the same without compiled blobs): a copy of the weights with
    the OpenVINO IR, validation set and qualification written next to it (`cosmicai convert-checkpoint
    --openvino --qualify`, as the inference image build does) and the fp32/int8 parts the image ships
    compiled for this CPU class at one thread (`export-compiled --parts embed,blocks,blocks_int8`); and a
    second copy of the IR without the blobs (a worker on a CPU class the image was not built on)."""
    import shutil

    from cosmicai import engine_openvino
    from cosmicai.qualify import prepare_engine_files

    folder = tmp / "engine"
    folder.mkdir(parents=True, exist_ok=True)
    w = folder / "astromae.safetensors"
    shutil.copyfile(weights, w)
    prepare_engine_files(w, openvino=True, qualify=True)
    plain = tmp / "engine-no-blobs"
    plain.mkdir(parents=True, exist_ok=True)
    w2 = plain / "astromae.safetensors"
    shutil.copyfile(w, w2)
    for suffix in (".qualification.json", ".validation.safetensors"):
        shutil.copyfile(folder / f"astromae{suffix}", plain / f"astromae{suffix}")
    shutil.copytree(engine_openvino.ir_dir(w), engine_openvino.ir_dir(w2))
    engine_openvino.export_compiled(
        engine_openvino.ir_dir(w), w, threads=(1,), precisions=("fp32", "int8"), parts=IMAGE_BLOB_PARTS
    )
    return w, w2


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
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    classes = [c.strip() for c in args.cpu_classes.split(",") if c.strip()]
    ov_model, blob_weights, plain_weights = None, weights, weights
    if "openvino" in backends:
        try:
            import openvino  # noqa: F401  # the backend's package (the infer extra)
        except ImportError:
            print("bench-system: openvino is not installed: the OpenVINO rows are not measured", flush=True)
            backends.remove("openvino")
            results["openvino_not_measured"] = "the openvino package is not installed"
    if "openvino" in backends:
        from cosmicai import engine_openvino

        print("writing the engine files (OpenVINO IR, qualification, compiled blobs) ...", flush=True)
        blob_weights, plain_weights = engine_files(weights, tmp)
        ov_model = engine_openvino.load(engine_openvino.ir_dir(blob_weights), blob_weights)
        results["engine_files"] = {
            "how": "cosmicai convert-checkpoint W --openvino --qualify and python -m cosmicai.engine_openvino "
            "export-compiled W --threads 1 --precisions fp32,int8 --parts embed,blocks,blocks_int8 on a copy of "
            "the weights (as the inference image "
            "build does); the qualification's fast choice per backend: " + json.dumps(_fast_choices(blob_weights)),
        }
    cfg = worker_path.WorkerBenchConfig(
        batch_sizes=_ints(args.batch_sizes, "--batch-sizes"),
        threads=_ints(args.threads, "--threads"),
        rounds=args.rounds,
        openvino_sweep=("fp32", "int8") if ov_model is not None else (),
        openvino_other=("bf16",) if ov_model is not None else (),
    )
    if not args.bucket:
        results["worker_path"] = {"not_measured": "no --bucket given (make bench passes BENCH_BUCKET)"}
    else:
        s3 = _s3_bucket(args.bucket)
        bench = worker_path.WorkerPathBench(
            s3, args.bucket, f"bench-{int(time.time())}/", model, synthetic_shard(args.objects), ov_model
        )
        wp = bench.measure(cfg, progress=lambda s: print(s, flush=True))
        wp["endpoint"] = os.environ.get("AWS_ENDPOINT_URL") or "AWS"
        wp["thread_scaling"] = worker_path.thread_scaling(wp["rows"], cfg.scaling_batch)
        results["worker_path"] = wp
    rows = (results["worker_path"] or {}).get("rows") or []
    probes = _probes(rows, blob_weights, plain_weights, ov_model is not None)
    batch = _probe_batch(rows)
    results["cold_start"] = {
        "probe": coldstart.probe_series(
            blob_weights, probes, batch, rounds=args.coldstart_rounds, progress=lambda s: print(s, flush=True)
        ),
        "method": "a fresh interpreter per probe: import the infer handler (Lambda's INIT: imports and the "
        "backend's model), build the engine, predict one object; one vCPU's share (one engine thread); median "
        f"of {args.coldstart_rounds} interleaved rounds",
    }
    if args.whole_process_objects > 0 and ov_model is not None:
        from cosmicai.perf import predict_process

        results["whole_process"] = predict_process.measure(
            blob_weights,
            objects=args.whole_process_objects,
            batch=512,
            rounds=args.rounds + 1,
            progress=lambda s: print(s, flush=True),
        )
    if "avx2" in classes and args.bucket:
        results["cpu_classes"] = {"avx2": _capped_class(args, blob_weights, ov_model is not None)}
        child = results["cpu_classes"]["avx2"]
        results["worker_path"]["rows"] = rows + child.pop("rows", [])
        results["cold_start"]["probe"] += child.pop("probes", [])
    if args.state_machine_arn and args.data_uri and args.results_uri:
        from cosmicai.perf import end_to_end

        # The deployed functions' INIT loads the torch model: the end-to-end runs use the best torch mode.
        best_torch = report.best_accurate(rows, backend="torch")
        e2e_mode, e2e_batch = (best_torch["precision"], best_torch["batch_size"]) if best_torch else ("fp32", 512)

        results["end_to_end"] = end_to_end.sweep(
            args.state_machine_arn,
            args.data_uri,
            args.results_uri,
            total_objects=args.e2e_objects,
            shard_mb=_ints(args.e2e_shard_mb, "--e2e-shard-mb"),
            concurrency=_ints(args.e2e_concurrency, "--e2e-concurrency"),
            precision=e2e_mode,
            batch_size=e2e_batch,
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
    return results  # derived by run(), after the parts not measured here are carried over


def _fast_choices(weights: Path) -> dict[str, str]:
    from cosmicai.qualify import cpu_features, load_qualification

    q = load_qualification(weights)
    entry = q.entry_for(cpu_features()) or {}
    return dict(entry.get("fast") or {})


def _probe_batch(rows: list[dict[str, Any]]) -> int:
    from cosmicai.perf import report

    best = report.best_accurate(rows)
    return int(best["batch_size"]) if best else 512


def _probes(rows: list[dict[str, Any]], blob_weights: Path, plain_weights: Path, openvino: bool) -> list[Any]:
    """The cold-start probes: torch fp32 and the best torch mode; with OpenVINO, fp32 and int8 importing
    the compiled blobs (the image on the builder's CPU class), int8 compiling from the IR (a worker on
    another class), and `fast` (what the qualification picks)."""
    from cosmicai.perf import report
    from cosmicai.perf.coldstart import Probe

    torch_best = report.best_accurate(rows, backend="torch")
    out = [Probe("torch", "fp32")]
    if torch_best and torch_best["precision"] != "fp32":
        out.append(Probe("torch", torch_best["precision"]))
    if openvino:
        out += [
            Probe("openvino", "int8", note="compiled blobs imported"),
            Probe("openvino", "fp32", note="compiled blobs imported"),
            Probe("openvino", "fast", name="openvino-fast", note="compiled blobs imported; fast as recorded"),
            Probe(
                "openvino",
                "int8",
                name="openvino-int8 (compiled at INIT)",
                weights=plain_weights,
                note="no compiled blobs: compiled from the IR",
            ),
        ]
    return out


def _capped_class(args: argparse.Namespace, weights: Path, openvino: bool) -> dict[str, Any]:
    """The avx2 class: this command in a child process with the libraries capped (AVX2_CAP_ENV)."""
    import subprocess

    out_file = Path(tempfile.mkdtemp(prefix="cosmicai-bench-avx2-")) / "class.json"
    argv = [
        sys.executable, "-m", "cosmicai.cli", "bench-system", "--class-child", "avx2", "--class-out", str(out_file),
        "--bucket", args.bucket, "--weights", str(weights), "--objects", str(args.objects),
        "--batch-sizes", args.batch_sizes, "--threads", "1", "--rounds", str(args.rounds),
        "--coldstart-rounds", str(args.coldstart_rounds), "--backends", "torch,openvino" if openvino else "torch",
    ]  # fmt: skip
    print(f"AVX2-capped class: a child process with {AVX2_CAP_ENV} ...", flush=True)
    res = subprocess.run(argv, env=dict(os.environ, **AVX2_CAP_ENV), check=False)
    if res.returncode != 0 or not out_file.is_file():
        return {"not_measured": f"the capped child process failed (exit {res.returncode})", "cap": AVX2_CAP_ENV}
    doc: dict[str, Any] = json.loads(out_file.read_text())
    return doc


def measure_class_child(args: argparse.Namespace) -> dict[str, Any]:
    """In the capped child: the worker path (what the cap reaches), cold-start probes and, for OpenVINO,
    the share of time in kernels the cap does not reach."""
    import logging

    from cosmicai import engine_openvino
    from cosmicai.perf import coldstart, worker_path
    from cosmicai.perf.coldstart import Probe
    from cosmicai.perf.scale import synthetic_shard
    from cosmicai.weights import load_model

    logging.getLogger("cosmicai.worker").setLevel(logging.WARNING)
    cls = args.class_child
    weights: Path = args.weights
    model = load_model(weights)
    openvino = "openvino" in args.backends
    ov_model = engine_openvino.load(engine_openvino.ir_dir(weights), weights) if openvino else None
    cfg = worker_path.WorkerBenchConfig(
        batch_sizes=_ints(args.batch_sizes, "--batch-sizes"),
        sweep_precisions=("fp32",),
        other_precisions=(),
        openvino_sweep=("fp32", "int8") if openvino else (),
        openvino_other=(),
        threads=(1,),
        rounds=args.rounds,
        cpu_class=cls,
    )
    shard = synthetic_shard(args.objects)
    bench = worker_path.WorkerPathBench(
        _s3_bucket(args.bucket), args.bucket, f"bench-{cls}-{int(time.time())}/", model, shard, ov_model
    )
    wp = bench.measure(cfg, progress=lambda s: print(f"[{cls}] {s}", flush=True))
    profiles = {}
    if ov_model is not None:
        for p in ("fp32", "int8"):
            profiles[p] = worker_path.openvino_isa_profile(ov_model, p, shard.images[:128], shard.magnitudes[:128])
        for row in wp["rows"]:
            if row["backend"] == "openvino":
                share = profiles[row["precision"]]["uncapped_share"]
                row["cap"] = f"partial: {share:.1%} of OpenVINO's time in kernels the cap does not reach"
                row["uncapped_share"] = share
            else:
                row["cap"] = "ATen avx2, oneDNN AVX2, MKL AVX2"
    probes = [Probe("torch", "fp32")]
    if openvino:
        probes += [
            Probe("openvino", "int8", note="no compiled blobs for this class: compiled from the IR"),
            Probe("openvino", "fp32", note="no compiled blobs for this class: compiled from the IR"),
            Probe("openvino", "fast", name="openvino-fast", note="fast re-checked at start-up on this class"),
        ]
    rows_probe = coldstart.probe_series(
        weights, probes, int(wp["rows"][0]["batch_size"]) if wp["rows"] else 512, rounds=args.coldstart_rounds,
        cpu_class=cls, progress=lambda s: print(f"[{cls}] {s}", flush=True),
    )  # fmt: skip
    return {
        "cpu_class": cls,
        "cap": {k: os.environ.get(k) for k in AVX2_CAP_ENV},
        "not_measured": AVX2_NOT_MEASURED,
        "openvino_isa_profile": profiles,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "rows": wp["rows"],
        "probes": rows_probe,
    }


# Parts a run without a deployed stack does not measure, carried over from the previous results.json.
CARRIED = ("end_to_end", "local_bill")
CARRIED_COLD_START = ("local_cloud", "local_cloud_report_init_ms")


def keep_previous(results: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """`results` with the parts it did not measure taken from `previous` (each marked with the run it
    came from in `sections_from`); every measured part is marked with this run."""
    now = results.get("created_at")
    sections: dict[str, Any] = {}
    for key in ("worker_path", "cold_start", "whole_process", "cpu_classes"):
        if key in results and not (results.get(key) or {}).get("not_measured"):
            sections[key] = now
    prev_from = (previous or {}).get("sections_from") or {}
    prev_at = (previous or {}).get("created_at")
    for key in CARRIED:
        mine = results.get(key)
        theirs = (previous or {}).get(key)
        if (
            (mine is None or (isinstance(mine, dict) and mine.get("not_measured")))
            and theirs
            and not (isinstance(theirs, dict) and theirs.get("not_measured"))
        ):
            results[key] = theirs
            sections[key] = prev_from.get(key, prev_at)
        elif mine is not None and not (isinstance(mine, dict) and mine.get("not_measured")):
            sections[key] = now
    cold, prev_cold = results.setdefault("cold_start", {}), (previous or {}).get("cold_start") or {}
    if "local_cloud" not in cold and prev_cold.get("local_cloud"):
        for k in CARRIED_COLD_START:
            if k in prev_cold:
                cold[k] = prev_cold[k]
        cold.pop("local_cloud_not_measured", None)
        sections["cold_start.local_cloud"] = prev_from.get("cold_start.local_cloud", prev_at)
    results["sections_from"] = sections
    return results


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
    if args.class_child:
        doc = measure_class_child(args)
        args.class_out.write_text(json.dumps(doc, indent=1) + "\n")
        return 0
    if args.report_only:
        results = derive(json.loads(path.read_text()))
    else:
        previous = json.loads(path.read_text()) if path.is_file() and not args.no_keep_previous else None
        results = measure(args)
        results = derive(keep_previous(results, previous))
        out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    report_path = write_report(results, out)
    for name, t in results["targets"].items():
        print(f"{name}: {t['value']} (target {t['target']}): {t['detail']}")
    print(f"wrote {path} and {report_path}")
    return 0
