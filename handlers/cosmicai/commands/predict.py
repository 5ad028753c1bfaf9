"""`cosmicai predict`: redshifts for local shards, written as one per-object catalog."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the predict parser."""
    p = subparsers.add_parser(
        "predict",
        help="predict redshifts for shard files and write a catalog",
        description="Run AstroMAE over each shard (read ahead in the background) and write one "
        "catalog (object_id, z_pred, z_true). A bad shard is reported by its error and skipped; "
        "the exit code is 1 if any shard failed.",
    )
    p.add_argument("--weights", metavar="W", default=None, help="safetensors weights (default: $COSMICAI_WEIGHTS or the packaged demo weights)")
    p.add_argument("--input", nargs="+", required=True, metavar="SHARD", help="shard files (safetensors, npz or reference .pt)")
    p.add_argument("--output", required=True, metavar="OUT", help="catalog file to write")
    p.add_argument("--batch-size", type=int, default=512, metavar="N", help="objects per batch (default 512)")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8", "fast"), default="fp32",
                   help="precision of the transformer blocks (default fp32); fast: the fastest one recorded as within "
                   "2e-3 of fp32 for these weights on this CPU class (see convert-checkpoint --qualify), else fp32")
    p.add_argument("--backend", choices=("torch", "openvino"), default="torch",
                   help="engine backend (default torch; openvino reads the IR written by convert-checkpoint --openvino)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="catalog format (default parquet)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="engine threads (default: CPUs available to this process)")
    p.set_defaults(run=run)


@dataclass
class _Collected:
    """Per-shard outputs gathered for the catalog."""

    ids: list[Any] = field(default_factory=list)
    preds: list[Any] = field(default_factory=list)
    trues: list[Any] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _read(path: str) -> Any:
    from cosmicai.shards import read_shard

    return read_shard(path)


def _error_line(path: str, exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    tag = f"{type(exc).__name__}" + (f" [{code}]" if code else "")
    return f"{path}: {tag}: {exc}"


def run(args: argparse.Namespace) -> int:
    """Predict every shard; write the catalog; print timings and metrics; 1 if any shard failed."""
    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cosmicai.catalog import write_catalog
    from cosmicai.engine import Engine, EngineError, peak_rss_mb, prefetch
    from cosmicai.metrics import MetricState, format_metrics
    from cosmicai.weights import WeightsError

    out = Console(file=sys.stdout)
    err = Console(file=sys.stderr)
    try:
        engine = Engine.from_weights(args.weights, backend=args.backend, precision=args.precision,
                                     threads=args.threads, batch_size=args.batch_size)
    except (WeightsError, EngineError) as exc:
        err.print(f"predict: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        return 2

    got = _Collected()
    metrics = MetricState()
    seconds = 0.0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True,
    ) as progress:
        task = progress.add_task("shards", total=len(args.input))
        for path, shard, exc in prefetch(args.input, _read, depth=1):
            if exc is None:
                try:
                    z = engine.predict(shard.images, shard.magnitudes)
                except EngineError as e:
                    exc = e
            if exc is not None:
                got.failed.append((str(path), _error_line(str(path), exc)))
                progress.console.print(_error_line(str(path), exc), markup=False, highlight=False)
                progress.advance(task)
                continue
            t = engine.last_timings
            seconds += t.seconds
            got.ids.append(shard.object_ids)
            got.preds.append(z)
            got.trues.append(shard.redshift if shard.redshift is not None else np.full(shard.n, np.nan, np.float32))
            if shard.redshift is not None:
                metrics.update(shard.redshift, z)
            progress.console.print(
                f"{path}: {t.n} objects in {t.seconds:.3f} s ({t.objects_per_s:.1f} obj/s, "
                f"{len(t.batches)} batch(es))", markup=False, highlight=False,
            )
            progress.advance(task)

    n_ok = len(args.input) - len(got.failed)
    if got.ids:
        ids = np.concatenate(got.ids)
        trues = np.concatenate(got.trues)
        nbytes = write_catalog(
            args.output, ids, np.concatenate(got.preds),
            None if np.isnan(trues).all() else trues, fmt=args.format,
        )
        rate = ids.size / seconds if seconds > 0 else float("inf")
        out.print(
            f"catalog: {args.output} ({ids.size} objects, {nbytes:,} bytes, {args.format}); "
            f"compute {seconds:.3f} s, {rate:.1f} obj/s, backend {engine.backend}, precision {engine.precision}"
            f"{' (fast)' if engine.fast is not None else ''}, "
            f"{engine.threads} thread(s), peak RSS {peak_rss_mb():.0f} MiB",
            markup=False, highlight=False,
        )
        if engine.fast is not None:
            out.print(f"fast: {engine.fast.reason} [{engine.fast.source}]", markup=False, highlight=False)
        if metrics.n:
            out.print(f"metrics: {format_metrics(metrics.compute())}", markup=False, highlight=False)
    else:
        out.print("no catalog written: every shard failed", markup=False, highlight=False)
    out.print(f"shards: {n_ok} ok, {len(got.failed)} failed", markup=False, highlight=False)
    return 1 if got.failed else 0
