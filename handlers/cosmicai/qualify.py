"""`precision="fast"`: which precision may run for these weights on this CPU.

A fast precision (bf16 or int8 transformer blocks) is fast only where the CPU has the
instructions for it, and accurate only for some weights: with the demo weights bf16 is
within 3e-4 of fp32, with randomly initialised weights of the same architecture 3.7e-2.
So every mode is *qualified*: its max |dz| vs fp32 and its objects/s are measured on a
fixed validation set when the weights are converted (or the image is built) and recorded
next to the weights in `<weights>.qualification.json`, one entry per CPU class (the set of
instruction-set flags that decide precision speed: AVX2, AVX-512, VNNI, BF16, AMX).

`fast` then means: of this backend's modes recorded for this CPU class, the fastest whose
max |dz| <= 2e-3 (fp32 itself always qualifies). On a CPU class the file has not seen, the
engine re-checks at start-up: the candidates this CPU can run fast (bf16 only with native
bf16) are compared against fp32 on the first `RECHECK_OBJECTS` validation objects, timed,
and the fastest accurate one is used. With no qualification, no validation set, or no mode
within the bound, the engine runs fp32 and logs a warning saying why.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai import procstats
from cosmicai.engine import BACKENDS, PRECISIONS, EngineError, Runner
from cosmicai.weightsfile import sidecar, weights_sha256

BOUND = 2e-3  # max |dz| vs fp32 for a mode to qualify (the project's accuracy bar)
FORMAT = "cosmicai.qualification"
VERSION = "1"
QUALIFICATION_SUFFIX = ".qualification.json"
VALIDATION_SUFFIX = ".validation.safetensors"
# The packaged validation set: `cosmicai make-dataset --n 256 --seed 21` (64x64 rendered,
# centre-cropped to 32x32), 256 objects never used in training the demo weights.
PACKAGED_VALIDATION = "validation-n256-s21.safetensors"
RECHECK_OBJECTS = 128
TIE = 0.05  # modes within 5% of the fastest count as equally fast (the more accurate one is chosen)
_LOG = logging.getLogger("cosmicai.qualify")


class QualificationError(EngineError):
    """A qualification file that cannot be used (message says why)."""


# Comma-separated flags that replace /proc/cpuinfo's for the CPU class: for a CPU capped below what
# it reports (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2), so `fast` re-checks for that class.
CPU_FEATURES_ENV = "COSMICAI_CPU_FEATURES"


def cpu_features(flags: Iterable[str] | None = None) -> list[str]:
    """The CPU class: sorted instruction-set flags that decide which precision is fast."""
    if flags is None:
        override = os.environ.get(CPU_FEATURES_ENV, "").strip()
        flags = [f.strip() for f in override.split(",") if f.strip()] if override else procstats.cpu_info()[1]
    return sorted(procstats.ISA_OF_INTEREST & frozenset(flags))


def candidates(backend: str, flags: Iterable[str], available: Iterable[str] = PRECISIONS) -> list[str]:
    """Precisions other than fp32 worth measuring for `backend` on a CPU with `flags`.

    bf16 only with native bf16 (AVX-512 BF16 or AMX): elsewhere torch emulates it (slower
    than fp32) and OpenVINO runs it in f32. int8 everywhere it exists: both backends have
    AVX2 int8 kernels, and their accuracy there (7-bit weights, saturating pair sums) is
    exactly what the check measures.
    """
    if backend not in BACKENDS:
        raise EngineError(f"backend {backend!r} unknown")
    flags = frozenset(flags)
    available = set(available)
    out = []
    if "bf16" in available and flags & procstats.NATIVE_BF16:
        out.append("bf16")
    if "int8" in available:
        out.append("int8")
    return out


def choose(modes: list[dict[str, Any]], backend: str, bound: float = BOUND) -> tuple[str, str]:
    """(precision, reason): the fastest of `backend`'s measured modes within `bound`, else fp32.

    Modes within `TIE` of the fastest are a tie, won by the smaller max |dz|.

    `modes` rows: {"backend", "precision", "max_abs_dz_vs_fp32", "objects_per_s"}.
    """
    rows = [m for m in modes if m["backend"] == backend]
    ok = [m for m in rows if m["precision"] == "fp32" or m["max_abs_dz_vs_fp32"] <= bound]
    fast = [m for m in ok if m["precision"] != "fp32"]
    refused = [m for m in rows if m not in ok]
    refused_txt = ", ".join(f"{m['precision']} {m['max_abs_dz_vs_fp32']:.1e}" for m in refused)
    if not fast:
        if refused:
            return "fp32", f"no {backend} mode within {bound:g} of fp32 for these weights ({refused_txt}); running fp32"
        return "fp32", f"no faster {backend} mode to try on this CPU; running fp32"
    top = max(m["objects_per_s"] for m in ok)
    # Within TIE of the fastest, timing noise decides; the more accurate mode is taken instead.
    best = min((m for m in ok if m["objects_per_s"] >= (1 - TIE) * top), key=lambda m: m["max_abs_dz_vs_fp32"])
    fp32 = next((m for m in ok if m["precision"] == "fp32"), None)
    speed = f", {best['objects_per_s'] / fp32['objects_per_s']:.2f}x fp32" if fp32 and fp32["objects_per_s"] > 0 else ""
    reason = (
        f"{backend} {best['precision']}: fastest within {bound:g} (max |dz| {best['max_abs_dz_vs_fp32']:.1e}{speed})"
    )
    if refused:
        reason += f"; over the bound: {refused_txt}"
    return best["precision"], reason


# --------------------------------------------------------------- the file


def qualification_path(weights: Path | str) -> Path:
    """`astromae.safetensors` -> `astromae.qualification.json`."""
    return sidecar(weights, QUALIFICATION_SUFFIX)


def validation_path(weights: Path | str) -> Path:
    """`astromae.safetensors` -> `astromae.validation.safetensors` (the set the file was measured on)."""
    return sidecar(weights, VALIDATION_SUFFIX)


def packaged_validation() -> Path:
    """The validation set shipped in the package (cosmicai/assets)."""
    return Path(str(resources.files("cosmicai") / "assets" / PACKAGED_VALIDATION))


@dataclass
class Qualification:
    """A weights file's qualification as loaded: the document (None when absent) and why."""

    weights: Path
    doc: dict[str, Any] | None
    validation: Path | None
    problem: str = ""

    def entry_for(self, features: list[str]) -> dict[str, Any] | None:
        """The recorded entry for this CPU class, if any."""
        cpus: list[dict[str, Any]] = (self.doc or {}).get("cpus", [])
        for entry in cpus:
            if sorted(entry.get("features", [])) == sorted(features):
                return entry
        return None


def load_qualification(weights: Path | str) -> Qualification:
    """The qualification recorded next to `weights`; a file for other weights counts as absent."""
    weights = Path(weights)
    path = qualification_path(weights)
    beside, packaged = validation_path(weights), packaged_validation()
    val = beside if beside.is_file() else packaged if packaged.is_file() else None
    if not path.is_file():
        return Qualification(
            weights,
            None,
            val,
            f"no qualification recorded at {path} (write it: `cosmicai convert-checkpoint {weights} --qualify`)",
        )
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        return Qualification(weights, None, val, f"{path} is not JSON ({exc})")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        return Qualification(weights, None, val, f"{path} is not a {FORMAT} v{VERSION} file")
    want = doc.get("weights", {})
    if weights.stat().st_size != want.get("bytes") or weights_sha256(weights) != want.get("sha256"):
        return Qualification(
            weights,
            None,
            val,
            f"{path} was measured for other weights (sha256 differs); "
            f"re-run `cosmicai convert-checkpoint {weights} --qualify`",
        )
    return Qualification(weights, doc, val)


def read_validation(path: Path | str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images, magnitudes) float32 of a validation shard, the first `limit` objects."""
    from cosmicai.shards import read_shard

    shard = read_shard(str(path))
    n = shard.n if limit is None else min(limit, shard.n)
    return np.ascontiguousarray(shard.images[:n], np.float32), np.ascontiguousarray(shard.magnitudes[:n], np.float32)


# --------------------------------------------------------------- measuring


Predict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def measure(
    runs: dict[tuple[str, str], Predict],
    reference: np.ndarray | None,
    images: np.ndarray,
    magnitudes: np.ndarray,
    rounds: int = 2,
    bound: float = BOUND,
) -> list[dict[str, Any]]:
    """Rows {backend, precision, max_abs_dz_vs_fp32, objects_per_s, qualified} for each run.

    Runs are interleaved round by round (the best rate of each kept), so a busy machine
    slows all alike; each is warmed once first. `reference` None: the fp32 run's own output.
    """
    for fn in runs.values():
        fn(images[:8], magnitudes[:8])
    best = dict.fromkeys(runs, 0.0)
    outs: dict[tuple[str, str], np.ndarray] = {}
    n = images.shape[0]
    for _ in range(max(1, rounds)):
        for key, fn in runs.items():
            t0 = time.perf_counter()
            outs[key] = np.asarray(fn(images, magnitudes), np.float32).reshape(-1)
            best[key] = max(best[key], n / max(time.perf_counter() - t0, 1e-9))
    rows = []
    for (backend, precision), out in outs.items():
        ref = reference if reference is not None else outs[(backend, "fp32")]
        dz = float(np.abs(out - ref).max())
        rows.append(
            {
                "backend": backend,
                "precision": precision,
                "max_abs_dz_vs_fp32": dz,
                "objects_per_s": round(best[(backend, precision)], 1),
                "qualified": precision == "fp32" or dz <= bound,
            }
        )
    return rows


def cpu_entry(
    modes: list[dict[str, Any]], threads: int, reference: str, objects: int, seconds: float
) -> dict[str, Any]:
    """One CPU class's record: where and how it was measured, the rows, and `fast` per backend."""
    model, _ = procstats.cpu_info()
    backends = sorted({m["backend"] for m in modes})
    return {
        "cpu_model": model,
        "features": cpu_features(),
        "machine": platform.machine(),
        "threads": threads,
        "objects": objects,
        "reference": reference,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "seconds": round(seconds, 2),
        "modes": modes,
        "fast": {b: choose(modes, b)[0] for b in backends},
        "reasons": {b: choose(modes, b)[1] for b in backends},
    }


def write_qualification(
    weights: Path | str, entry: dict[str, Any], validation: Path, extra: dict[str, Any] | None = None
) -> Path:
    """Record `entry` in the qualification next to `weights` (replacing this CPU class's entry)."""
    weights = Path(weights)
    path = qualification_path(weights)
    old = load_qualification(weights).doc if path.is_file() else None
    cpus = [e for e in (old or {}).get("cpus", []) if sorted(e.get("features", [])) != sorted(entry["features"])]
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "bound": BOUND,
        "weights": {"file": weights.name, "sha256": weights_sha256(weights), "bytes": weights.stat().st_size},
        "validation": {"file": validation.name, "sha256": weights_sha256(validation), "objects": int(entry["objects"])},
        **(extra or {}),
        "cpus": [*cpus, entry],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)
    return path


def calibration_images(images: np.ndarray) -> np.ndarray:
    """The validation images turned 90 degrees and mirrored: int8 activation ranges are taken on
    these, so the objects the accuracy check sees were not the ones the scales were fitted to."""
    return np.ascontiguousarray(np.flip(np.rot90(images, 1, axes=(2, 3)), axis=3), np.float32)


def qualify_weights(
    weights: Path | str,
    validation: Path | str,
    ir: Any = None,
    threads: int = 1,
    rounds: int = 3,
    backends: Iterable[str] = BACKENDS,
) -> dict[str, Any]:
    """Measure every mode of `backends` on this CPU against fp32 eager; return the CPU entry.

    Imports torch (the reference is the unmodified model, eager, fp32). The openvino modes
    need `ir` (an `engine_openvino.OpenVINOModel`).
    """
    from cosmicai.engine import make_runner
    from cosmicai.engine_torch import plain_eager_predict
    from cosmicai.weights import load_model

    model = load_model(weights)
    images, mags = read_validation(validation)
    t0 = time.perf_counter()
    reference = plain_eager_predict(model, images, mags, batch_size=images.shape[0])
    runs: dict[tuple[str, str], Predict] = {}
    for backend in backends:
        if backend == "openvino" and ir is None:
            continue
        available = ir.precisions if backend == "openvino" else PRECISIONS
        for precision in available:
            runner = make_runner(ir if backend == "openvino" else model, backend, precision, threads, 128)

            def run(x: np.ndarray, m: np.ndarray, runner: Runner = runner) -> np.ndarray:
                runner.start()
                return runner.run(x, m)

            runs[(backend, precision)] = run
    rows = measure(runs, reference, images, mags, rounds=rounds)
    return cpu_entry(
        rows, threads, "torch fp32 eager (the unmodified model)", int(images.shape[0]), time.perf_counter() - t0
    )


def prepare_engine_files(
    weights: Path | str,
    *,
    openvino: bool = True,
    qualify: bool = True,
    validation: Path | str | None = None,
    threads: int = 1,
    rounds: int = 3,
) -> dict[str, Any]:
    """Write what the engine reads next to `weights`: the validation set, the OpenVINO IR, the qualification.

    Returns a summary (paths, conversion time, the recorded entry).
    """
    import shutil

    weights = Path(weights)
    src = Path(validation) if validation is not None else packaged_validation()
    if not src.is_file():
        raise QualificationError(
            f"validation set {src} not found (pass --validation SHARD, e.g. one written by `cosmicai make-dataset`)"
        )
    val = validation_path(weights)
    if src.resolve() != val.resolve():
        shutil.copyfile(src, val)
    summary: dict[str, Any] = {"weights": str(weights), "validation": str(val)}
    ir = None
    if openvino:
        from cosmicai import engine_openvino
        from cosmicai.openvino_convert import convert, lossless_fp16
        from cosmicai.weights import load_model

        model = load_model(weights)
        images, mags = read_validation(val)
        parts, facts = convert(model, calibration=(calibration_images(images), mags))
        facts["int8_calibration"] = f"{val.name}, images turned 90 degrees and mirrored"
        folder = engine_openvino.ir_dir(weights)
        engine_openvino.save(
            engine_openvino.OpenVINOModel(parts), folder, weights, weights_fp16=lossless_fp16(model), facts=facts
        )
        ir = engine_openvino.load(folder, weights)
        summary["openvino"] = {"folder": str(folder), **ir.manifest}
    if qualify:
        entry = qualify_weights(
            weights, val, ir=ir, threads=threads, rounds=rounds, backends=BACKENDS if ir is not None else ("torch",)
        )
        summary["qualification"] = str(write_qualification(weights, entry, val))
        summary["entry"] = entry
    return summary


# --------------------------------------------------------------- at start-up


@dataclass
class FastChoice:
    """What `precision="fast"` resolved to, why, and from where (recorded, rechecked, fallback)."""

    precision: str
    reason: str
    source: str
    runner: Any = None
    modes: list[dict[str, Any]] = field(default_factory=list)


def resolve_fast(
    backend: str,
    qualification: Qualification | None,
    build: Callable[[str], Any],
    flags: Iterable[str] | None = None,
    available: Iterable[str] = PRECISIONS,
) -> FastChoice:
    """The precision `fast` means for `backend` on this CPU (see the module docstring).

    `build(precision)` makes a runner (`.run(images, magnitudes)`); it is called only for a
    re-check, and the chosen runner is handed back so the engine need not build it again.
    """
    features = cpu_features(flags)
    if qualification is None or qualification.doc is None:
        why = qualification.problem if qualification is not None else "no qualification given"
        _LOG.warning("precision fast -> fp32: %s", why)
        return FastChoice("fp32", why, "fallback")
    available = tuple(available)
    entry = qualification.entry_for(features)
    if entry is not None:
        recorded = [m for m in entry["modes"] if m["precision"] in available]
        precision, reason = choose(recorded, backend, float(qualification.doc.get("bound", BOUND)))
        if precision == "fp32":
            _LOG.warning("precision fast -> fp32: %s (recorded for this CPU class)", reason)
        return FastChoice(precision, reason, "recorded", modes=recorded)
    if qualification.validation is None or not Path(qualification.validation).is_file():
        why = (
            f"this CPU class ({' '.join(features) or 'none'}) is not in {qualification_path(qualification.weights)} "
            "and there is no validation set to re-check on"
        )
        _LOG.warning("precision fast -> fp32: %s", why)
        return FastChoice("fp32", why, "fallback")
    t0 = time.perf_counter()
    tried = candidates(backend, features, available)
    if not tried:
        return FastChoice(
            "fp32",
            f"no faster {backend} mode for this CPU class ({' '.join(features) or 'none'}); running fp32",
            "rechecked",
        )
    images, mags = read_validation(qualification.validation, RECHECK_OBJECTS)
    runners = {"fp32": build("fp32")}
    failed = []
    for p in tried:
        try:
            runners[p] = build(p)
            runners[p].run(images[:2], mags[:2])
        except Exception as exc:  # a candidate this CPU (or a capped library) cannot run is no candidate
            runners.pop(p, None)
            failed.append(f"{p} failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    rows = measure({(backend, p): r.run for p, r in runners.items()}, None, images, mags, rounds=1)
    precision, reason = choose(rows, backend)
    if failed:
        reason += "; " + "; ".join(failed)
    reason += (
        f" (re-checked on this CPU class, {' '.join(features) or 'none'}, in {time.perf_counter() - t0:.1f} s: "
        f"{images.shape[0]} validation objects)"
    )
    log = _LOG.warning if precision == "fp32" else _LOG.info
    log("precision fast -> %s: %s", precision, reason)
    return FastChoice(precision, reason, "rechecked", runner=runners[precision], modes=rows)


__all__ = [
    "BOUND",
    "CPU_FEATURES_ENV",
    "FastChoice",
    "Qualification",
    "QualificationError",
    "candidates",
    "choose",
    "cpu_entry",
    "cpu_features",
    "calibration_images",
    "load_qualification",
    "prepare_engine_files",
    "qualify_weights",
    "measure",
    "packaged_validation",
    "qualification_path",
    "read_validation",
    "resolve_fast",
    "validation_path",
    "write_qualification",
]
