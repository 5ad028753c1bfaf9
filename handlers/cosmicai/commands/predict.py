"""`cosmicai predict`: redshifts for local shards, written as one per-object catalog."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the predict parser."""
    from cosmicai.contracts import BACKENDS, PRECISION_CHOICES, UNCERTAINTY_MODES

    p = subparsers.add_parser(
        "predict",
        help="predict redshifts for shard files and write a catalog",
        description="Run AstroMAE over each shard (read ahead in the background) and write one "
        "catalog (object_id, z_pred, z_true). A bad shard is reported by its error and skipped; "
        "the exit code is 1 if any shard failed.",
    )
    p.add_argument(
        "--weights",
        metavar="W",
        default=None,
        help="safetensors weights (default: $COSMICAI_WEIGHTS or the packaged demo weights)",
    )
    p.add_argument(
        "--input", nargs="+", required=True, metavar="SHARD", help="shard files (safetensors, npz or reference .pt)"
    )
    p.add_argument("--output", required=True, metavar="OUT", help="catalog file to write")
    p.add_argument("--batch-size", type=int, default=512, metavar="N", help="objects per batch (default 512)")
    p.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="fp32",
        help="precision of the transformer blocks (default fp32); fast: the fastest one recorded as within "
        "2e-3 of fp32 for these weights on this CPU class (see convert-checkpoint --qualify), else fp32",
    )
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="engine backend (default torch; openvino reads the IR written by convert-checkpoint --openvino)",
    )
    p.add_argument(
        "--uncertainty",
        choices=UNCERTAINTY_MODES,
        default="none",
        help="per-object uncertainty (default none); tta8: predict the 8 rotations/flips of each cutout and "
        "write their mean as z_pred, z_err (their spread x the scale calibrated in the weights' model card) "
        "and z_p16/z_p84; ~8x the compute",
    )
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="catalog format (default parquet)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="engine threads (default: CPUs available to this process)",
    )
    p.set_defaults(run=run)


@dataclass
class _Collected:
    """Per-shard outputs gathered for the catalog."""

    ids: list[Any] = field(default_factory=list)
    preds: list[Any] = field(default_factory=list)
    trues: list[Any] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # uncertainty columns per shard (tta8)
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

    from cosmicai.catalog import UNCERTAINTY_COLUMNS, write_catalog
    from cosmicai.engine import Engine, EngineError, peak_rss_mb, prefetch
    from cosmicai.metrics import MetricState, coverage, format_metrics
    from cosmicai.uncertainty import Tta8Predictor, UncertaintyError, calibration_for, covered
    from cosmicai.weightsfile import WeightsError, resolve_weights_path  # not cosmicai.weights: it imports torch

    out = Console(file=sys.stdout)
    err = Console(file=sys.stderr)
    try:
        engine = Engine.from_weights(
            args.weights,
            backend=args.backend,
            precision=args.precision,
            threads=args.threads,
            batch_size=args.batch_size,
        )
        tta = (
            None
            if args.uncertainty == "none"
            else Tta8Predictor(
                engine, calibration_for(resolve_weights_path(args.weights)), images_per_call=args.batch_size
            )
        )
    except (WeightsError, EngineError, UncertaintyError) as exc:
        err.print(f"predict: {type(exc).__name__}: {exc}", markup=False, highlight=False)
        return 2

    collected = _Collected()
    metrics = MetricState()
    hits = [0, 0]  # labelled objects within z_err, labelled objects (tta8)
    seconds = 0.0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("shards", total=len(args.input))
        for path, shard, failure in prefetch(args.input, _read, depth=1):
            if failure is None:
                assert shard is not None  # a read that did not raise returned its shard
                t0 = time.perf_counter()
                try:
                    got = tta.predict(shard.images, shard.magnitudes) if tta else None
                    z = got.z_pred if got else engine.predict(shard.images, shard.magnitudes)
                except EngineError as e:
                    failure = e
                wall = time.perf_counter() - t0
            if failure is not None:
                collected.failed.append((str(path), _error_line(str(path), failure)))
                progress.console.print(_error_line(str(path), failure), markup=False, highlight=False)
                progress.advance(task)
                continue
            assert shard is not None
            seconds += wall
            collected.ids.append(shard.object_ids)
            collected.preds.append(z)
            unknown = np.full(shard.n, np.nan, np.float32)
            collected.trues.append(shard.redshift if shard.redshift is not None else unknown)
            if got is not None:
                collected.errors.append(got.columns())
            if shard.redshift is not None:
                metrics.update(shard.redshift, z)
                if got is not None:
                    hits[0] += int(covered(shard.redshift, z, got.z_err).sum())
                    hits[1] += shard.n
            views = f", {8 * shard.n} images: 8 views each" if tta else ""
            shard_rate = shard.n / wall if wall > 0 else float("inf")
            progress.console.print(
                f"{path}: {shard.n} objects in {wall:.3f} s ({shard_rate:.1f} obj/s{views})",
                markup=False,
                highlight=False,
            )
            progress.advance(task)

    n_ok = len(args.input) - len(collected.failed)
    if collected.ids:
        ids = np.concatenate(collected.ids)
        trues = np.concatenate(collected.trues)
        errors = {k: np.concatenate([e[k] for e in collected.errors]) for k in UNCERTAINTY_COLUMNS} if tta else None
        nbytes = write_catalog(
            args.output,
            ids,
            np.concatenate(collected.preds),
            None if np.isnan(trues).all() else trues,
            fmt=args.format,
            uncertainty=errors,
        )
        rate = ids.size / seconds if seconds > 0 else float("inf")
        out.print(
            f"catalog: {args.output} ({ids.size} objects, {nbytes:,} bytes, {args.format}); "
            f"compute {seconds:.3f} s, {rate:.1f} obj/s, backend {engine.backend}, precision {engine.precision}"
            f"{' (fast)' if engine.fast is not None else ''}, "
            f"{engine.threads} thread(s), uncertainty {args.uncertainty}, peak RSS {peak_rss_mb():.0f} MiB",
            markup=False,
            highlight=False,
        )
        if engine.fast is not None:
            out.print(f"fast: {engine.fast.reason} [{engine.fast.source}]", markup=False, highlight=False)
        if metrics.n:
            out.print(f"metrics: {format_metrics(metrics.compute() | coverage(*hits))}", markup=False, highlight=False)
    else:
        out.print("no catalog written: every shard failed", markup=False, highlight=False)
    out.print(f"shards: {n_ok} ok, {len(collected.failed)} failed", markup=False, highlight=False)
    return 1 if collected.failed else 0
