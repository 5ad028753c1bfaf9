"""Fast batched CPU inference for AstroMAE, on one of two backends.

`Engine(model, precision=..., backend=...)` predicts redshifts batch by batch and reports
per-batch timings; the backend does the arithmetic:

- `torch` (default, the reference and the fp32-exact path; `cosmicai.engine_torch`): a
  folded copy of the model run eagerly (BatchNorm folded, shared-input 1x1 convolutions
  merged, patch embedding as one matmul, oneDNN Linear layers with fused activations).
- `openvino` (`cosmicai.engine_openvino`): the model converted once to OpenVINO IR in three
  parts (patch embedding, transformer blocks, the rest), each compiled with its own
  precision, so only the blocks ever run in bf16 or int8.

Precisions change only the transformer blocks (about 85% of the arithmetic): `fp32`,
`bf16`, `int8`, or `fast`, the fastest of them on this CPU whose max |dz| vs fp32 stays
within 2e-3 for these weights (`cosmicai.qualify`). The patch embedding, CNN, magnitude MLP
and heads stay fp32: magnitudes near 18 are only 0.06 apart in bf16 or 8-bit, which alone
moved z by 4e-2, and bf16 convolutions added 1.3e-3.

This module imports neither torch nor openvino: the backend's module is imported when an
engine of that backend is built, so a process that runs OpenVINO never loads torch.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from cosmicai import procstats
from cosmicai.contracts import (
    BACKENDS as BACKENDS,
    PRECISION_CHOICES as PRECISION_CHOICES,
    PRECISIONS as PRECISIONS,
)
from cosmicai.costs import MB_PER_VCPU
from cosmicai.procstats import NATIVE_BF16, peak_rss_mb

if TYPE_CHECKING:
    from cosmicai.engine_torch import (
        FoldedAstroMAE as FoldedAstroMAE,
        TorchRunner as TorchRunner,
        int8_weight_max as int8_weight_max,
        plain_eager_predict as plain_eager_predict,
    )
    from cosmicai.qualify import FastChoice

# PRECISIONS (concrete), PRECISION_CHOICES (those and `fast`) and BACKENDS are cosmicai.contracts'.
DEFAULT_MICRO_BATCH = 128  # measured: 128 objects keep a block's activations in cache
IMAGE_BANDS, IMAGE_SIZE = 5, 32  # cosmicai.model's (kept here so this module needs no torch)


class EngineError(ValueError):
    """Bad engine configuration or input arrays (message says which and why)."""


# --------------------------------------------------------------- resources


CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPU quota of the cgroup at `root` (v2 `cpu.max` or v1 `cpu/cpu.cfs_*`), None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


LAMBDA_MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"


def available_cpus(cgroup_root: Path = CGROUP_ROOT, env: Mapping[str, str] | None = None) -> int:
    """CPUs this process may really use: affinity mask capped by the cgroup quota and, inside
    Lambda, by the memory size's CPU share (>= 1)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    memory = environ.get(LAMBDA_MEMORY_ENV, "")
    if memory.isdigit():
        # Lambda shows up to 6 CPUs at any memory size but gives memory / 1,769 MB of them.
        share = int(memory) / MB_PER_VCPU
        limit = share if limit is None else min(limit, share)
    if limit is not None:
        # A 1.5-CPU quota cannot keep two busy threads fed; round down, never below 1.
        n = min(n, max(1, int(limit)))
    return max(1, n)


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed blocks instead of returning (and re-faulting) them per batch."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 256 * 1024 * 1024)
    libc.mallopt(m_trim_threshold, 512 * 1024 * 1024)


# --------------------------------------------------------------- engine


@dataclass
class BatchTiming:
    """One batch: objects, wall seconds, objects per second."""

    n: int
    seconds: float

    @property
    def objects_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Timings:
    """Per-batch and total timings of one `predict` call, plus peak RSS after it."""

    batches: list[BatchTiming] = field(default_factory=list)
    peak_rss_mb: float = 0.0

    @property
    def n(self) -> int:
        return sum(b.n for b in self.batches)

    @property
    def seconds(self) -> float:
        return sum(b.seconds for b in self.batches)

    @property
    def objects_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "n": self.n,
            "seconds": round(self.seconds, 6),
            "objects_per_s": round(self.objects_per_s, 2),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "batches": [
                {"n": b.n, "seconds": round(b.seconds, 6), "objects_per_s": round(b.objects_per_s, 2)}
                for b in self.batches
            ],
        }


class Runner(Protocol):
    """A backend's compiled model: runs one batch in micro-batches (`cosmicai.engine_*`)."""

    backend: str
    precision: str

    def start(self) -> None:
        """Called once per `Engine.predict` (torch's thread count is process-wide)."""

    def run(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        """Redshifts float32 (n,) for contiguous float32 images (n,5,32,32) and magnitudes (n,5)."""


def check_choice(backend: str, precision: str) -> None:
    """Raise EngineError unless `backend` and `precision` are ones the engine knows."""
    if backend not in BACKENDS:
        raise EngineError(f"backend {backend!r} unknown; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISION_CHOICES:
        raise EngineError(f"precision {precision!r} unknown; choose one of {', '.join(PRECISION_CHOICES)}")


def make_runner(model: Any, backend: str, precision: str, threads: int, micro_batch: int) -> Runner:
    """The backend's runner for `model` at a concrete precision (imports that backend only)."""
    if precision not in PRECISIONS:
        raise EngineError(f"precision {precision!r} is not a concrete precision ({', '.join(PRECISIONS)})")
    if backend == "torch":
        from cosmicai.engine_torch import TorchRunner

        return TorchRunner(model, precision, threads, micro_batch)
    if backend == "openvino":
        from cosmicai.engine_openvino import OpenVINORunner, as_openvino_model

        return OpenVINORunner(as_openvino_model(model), precision, threads, micro_batch)
    raise EngineError(f"backend {backend!r} unknown; choose one of {', '.join(BACKENDS)}")


class Engine:
    """Batched AstroMAE inference on CPU: `Engine(model).predict(images, magnitudes)`.

    `model` is an `AstroMAE` (either backend; the openvino backend converts it in memory,
    which takes seconds and imports torch) or, for `backend="openvino"`, an
    `engine_openvino.OpenVINOModel` read from the IR written next to the weights (no torch).
    `precision="fast"` picks the fastest qualified precision of this backend on this CPU
    from `qualification` (`cosmicai.qualify.Qualification`), re-checking on a CPU class the
    qualification has not seen, and falls back to fp32 with a logged warning; the choice
    and its reason are in `fast`.
    """

    def __init__(
        self,
        model: Any,
        precision: str = "fp32",
        threads: int | None = None,
        batch_size: int = 512,
        micro_batch: int = DEFAULT_MICRO_BATCH,
        backend: str = "torch",
        qualification: Any = None,
    ) -> None:
        check_choice(backend, precision)
        if batch_size < 1 or micro_batch < 1:
            raise EngineError(f"batch_size ({batch_size}) and micro_batch ({micro_batch}) must be >= 1")
        if threads is not None and threads < 1:
            raise EngineError(f"threads must be >= 1, got {threads}")
        self.backend = backend
        self.requested_precision = precision
        self.threads = threads or available_cpus()
        self.batch_size = batch_size
        self.micro_batch = micro_batch
        _keep_freed_memory()
        self.fast: FastChoice | None = None
        runner: Runner | None = None
        available = PRECISIONS
        if backend == "openvino":
            from cosmicai.engine_openvino import as_openvino_model

            model = as_openvino_model(model)  # converts an AstroMAE once, not per precision tried
            available = model.precisions
        if precision != "fast" and precision not in available:
            raise EngineError(
                f"precision {precision} is not available from this {backend} model (it has {', '.join(available)})"
            )
        if precision == "fast":
            from cosmicai.qualify import resolve_fast

            self.fast = resolve_fast(
                backend,
                qualification,
                lambda p: make_runner(model, backend, p, self.threads, micro_batch),
                available=available,
            )
            precision = self.fast.precision
            runner = self.fast.runner
            if runner is not None and backend == "openvino":
                # A re-check compiled every candidate; keep only what the chosen runner uses.
                keys = getattr(runner, "keys", ())  # an OpenVINORunner's compiled parts
                model.compiled = {k: v for k, v in model.compiled.items() if k in keys}
        self.precision = precision
        if precision == "bf16" and not procstats.cpu_info()[1] & NATIVE_BF16:
            warnings.warn(
                "precision bf16 on a CPU without AVX-512 BF16 or AMX runs emulated (torch) or in f32 (openvino), "
                "no faster than fp32; int8 is the fast mode here",
                RuntimeWarning,
                stacklevel=2,
            )
        self._runner = runner or make_runner(model, backend, precision, self.threads, micro_batch)
        self.last_timings = Timings()

    @classmethod
    def from_weights(cls, path: Path | str | None = None, backend: str = "torch", **kwargs: Any) -> Engine:
        """Engine over the weights at `path` (None: `$COSMICAI_WEIGHTS` or the packaged demo weights).

        torch: `weights.load_model(path)`. openvino: the IR written next to the weights by
        `cosmicai convert-checkpoint --openvino` (converted in memory, with a warning, when
        there is none). `precision="fast"` reads the qualification recorded next to them.
        """
        from cosmicai.weightsfile import resolve_weights_path

        check_choice(backend, kwargs.get("precision", "fp32"))
        weights = resolve_weights_path(path)
        if backend == "openvino":
            from cosmicai.engine_openvino import load_for_weights

            model: Any = load_for_weights(weights)
        else:
            from cosmicai.weights import load_model

            model = load_model(weights)
        if kwargs.get("precision") == "fast" and kwargs.get("qualification") is None:
            from cosmicai.qualify import load_qualification

            kwargs["qualification"] = load_qualification(weights)
        return cls(model, backend=backend, **kwargs)

    def _check(self, images: np.ndarray, magnitudes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        images = np.asarray(images)
        magnitudes = np.asarray(magnitudes)
        want = (IMAGE_BANDS, IMAGE_SIZE, IMAGE_SIZE)
        if images.ndim != 4 or images.shape[1:] != want:
            raise EngineError(f"images must have shape (N, {', '.join(map(str, want))}), got {images.shape}")
        if magnitudes.shape != (images.shape[0], IMAGE_BANDS):
            raise EngineError(f"magnitudes must have shape ({images.shape[0]}, {IMAGE_BANDS}), got {magnitudes.shape}")
        return (
            np.ascontiguousarray(images, dtype=np.float32),
            np.ascontiguousarray(magnitudes, dtype=np.float32),
        )

    def predict(
        self,
        images: np.ndarray,
        magnitudes: np.ndarray,
        on_batch: Callable[[BatchTiming], None] | None = None,
    ) -> np.ndarray:
        """Redshifts float32 (N,) for images (N,5,32,32) and magnitudes (N,5); timings in `last_timings`."""
        images, magnitudes = self._check(images, magnitudes)
        n = images.shape[0]
        out = np.empty(n, dtype=np.float32)
        timings = Timings()
        self._runner.start()
        for s in range(0, n, self.batch_size):
            e = min(n, s + self.batch_size)
            t0 = time.perf_counter()
            out[s:e] = self._runner.run(images[s:e], magnitudes[s:e])
            bt = BatchTiming(e - s, time.perf_counter() - t0)
            timings.batches.append(bt)
            if on_batch is not None:
                on_batch(bt)
        timings.peak_rss_mb = peak_rss_mb()
        self.last_timings = timings
        return out

    def describe(self) -> dict[str, Any]:
        """Backend, precision (and what was asked, and why for `fast`), threads, batch sizes."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "precision": self.precision,
            "requested_precision": self.requested_precision,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "micro_batch": self.micro_batch,
        }
        if self.fast is not None:
            out["fast"] = {"source": self.fast.source, "reason": self.fast.reason}
        return out


# --------------------------------------------------------------- prefetch


S = TypeVar("S")
R = TypeVar("R")


def prefetch(
    sources: Iterable[S], reader: Callable[[S], R], depth: int = 1
) -> Iterator[tuple[S, R | None, BaseException | None]]:
    """Yield (source, reader(source), None) in order while a background thread reads ahead.

    A reader failure is yielded as (source, None, exc) so one bad input never stops the rest
    (the caller decides: the worker re-raises a transient S3 error). At most `depth` reads run
    or wait ahead of the one the caller holds (1: the next shard downloads while this one
    computes; the one after it only once this one is taken), so memory holds depth + 1 inputs.
    Used by the worker (S3 shards) and `cosmicai predict` (local files).
    """
    if depth < 1:
        raise EngineError(f"prefetch depth must be >= 1, got {depth}")
    it = iter(sources)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cosmicai-prefetch") as pool:
        pending: deque[tuple[S, Future[R]]] = deque()

        def submit() -> None:
            for src in islice(it, 1):
                pending.append((src, pool.submit(reader, src)))

        for _ in range(depth):
            submit()
        while pending:
            src, future = pending.popleft()
            slot: list[tuple[S, R | None, BaseException | None]] = []
            try:
                slot.append((src, future.result(), None))
            except Exception as exc:  # handed to the consumer, which reports it by name
                slot.append((src, None, exc))
            del future  # the caller alone holds the result: it may free it (the worker's `del data`)
            submit()
            yield slot.pop()


# Torch-backed names kept importable from here (`from cosmicai.engine import plain_eager_predict`)
# without importing torch when this module loads.
_TORCH_NAMES = ("FoldedAstroMAE", "TorchRunner", "int8_weight_max", "plain_eager_predict")


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from cosmicai import engine_torch

        return getattr(engine_torch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "BatchTiming",
    "Engine",
    "EngineError",
    "FoldedAstroMAE",
    "Timings",
    "TorchRunner",
    "int8_weight_max",
    "available_cpus",
    "check_choice",
    "make_runner",
    "cgroup_cpu_limit",
    "peak_rss_mb",
    "plain_eager_predict",
    "prefetch",
]
