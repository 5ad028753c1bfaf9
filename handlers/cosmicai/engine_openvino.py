"""The OpenVINO backend of `cosmicai.engine.Engine` (no torch at run time).

The model is converted once (`cosmicai.openvino_convert`, from `cosmicai convert-checkpoint
... --openvino` or the inference image build) into OpenVINO IR written next to the weights:
`astromae.safetensors` -> `astromae.openvino/` holding `embed`, `blocks`, `rest` (and
`blocks_int8` when calibrated) as `.xml`/`.bin` pairs plus `manifest.json`, which records
the sha256 of the weights it came from. A worker reads the IR and compiles each part with
its own precision: `embed` and `rest` always f32, `blocks` f32, bf16 (OpenVINO's bf16
inference precision, native on AVX-512 BF16 / AMX) or int8 (`blocks_int8`: int8 matmuls
from fake-quantized weights and calibrated activation scales). Three compiled models run
in turn per micro-batch; the tensors passed between them are small (B x 17 x 192 floats).

Compiling the three parts is most of an OpenVINO worker's INIT (0.3-0.6 s of CPU on one thread).
`export_compiled` (`python -m cosmicai.engine_openvino export-compiled WEIGHTS`, run by the
inference image build) writes the compiled parts as OpenVINO blobs into `compiled/` inside the IR
folder, keyed by the CPU class they were compiled for (`qualify.cpu_features` plus
`ONEDNN_MAX_CPU_ISA`), threads and inference precision; a worker of the same class imports them
instead of compiling (OpenVINO itself refuses a blob of another ISA; the worker then compiles from
the IR). The IR parts are read only when a part has to be compiled.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmicai.contracts import PRECISIONS
from cosmicai.engine import EngineError
from cosmicai.weightsfile import sidecar, weights_sha256

IR_FORMAT = "cosmicai.openvino"
IR_VERSION = "1"
IR_SUFFIX = ".openvino"
MANIFEST = "manifest.json"
PARTS = ("embed", "blocks", "rest")
INT8_PART = "blocks_int8"
# Parts that may be stored f16 when the weights are exactly fp16 (the demo weights are): the
# CPU plugin then computes the same f32 numbers. Not `rest`: it folds BatchNorm into the CNN's
# convolutions in the stored precision, which moved z by 4.5e-4 when it was f16.
F16_SAFE_PARTS = ("embed", "blocks")
# The part that runs each precision's transformer blocks, and OpenVINO's inference precision for it.
BLOCKS_FOR = {"fp32": ("blocks", "f32"), "bf16": ("blocks", "bf16"), "int8": (INT8_PART, "f32")}
# Compiled blobs inside the IR folder: compiled/index.json and one file per (class, part, threads, precision).
COMPILED_DIR = "compiled"
COMPILED_INDEX = "index.json"
COMPILED_FORMAT = "cosmicai.openvino.compiled"
# oneDNN's ISA cap: a blob compiled under it is for that ISA (OpenVINO's CPU plugin honours it for its
# matmuls and convolutions), so it is part of a blob's CPU class.
ISA_CAP_ENV = "ONEDNN_MAX_CPU_ISA"
_LOG = logging.getLogger("cosmicai.engine_openvino")


class OpenVINOIRError(EngineError):
    """The IR folder is missing, incomplete, or belongs to other weights (message says which)."""


@functools.cache
def core() -> Any:
    """One OpenVINO Core per process (its plugins load once)."""
    import openvino as ov

    return ov.Core()


def openvino_version() -> str:
    """The installed OpenVINO's version string."""
    import openvino as ov

    return str(ov.get_version())  # openvino ships no type information


def ir_dir(weights: Path | str) -> Path:
    """Where the IR of these weights lives: `<weights without .safetensors>.openvino/`."""
    return sidecar(weights, IR_SUFFIX)


class LazyParts(Mapping[str, Any]):
    """IR parts by name, each read (`Core.read_model`) on first use: a worker that imports compiled
    blobs never reads the IR it does not compile."""

    def __init__(self, files: Mapping[str, Path]) -> None:
        self.files = dict(files)
        self._read: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._read:
            self._read[name] = core().read_model(self.files[name])
        return self._read[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.files)

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, name: object) -> bool:
        return name in self.files

    @property
    def read(self) -> tuple[str, ...]:
        """The parts read so far."""
        return tuple(self._read)


def cpu_class() -> str:
    """The CPU class a compiled blob is for: the precision-deciding instruction sets
    (`qualify.cpu_features`, which honours COSMICAI_CPU_FEATURES) and oneDNN's ISA cap when set."""
    from cosmicai.qualify import cpu_features

    cap = os.environ.get(ISA_CAP_ENV, "").strip().lower()
    return " ".join(cpu_features()) + (f" | {ISA_CAP_ENV.lower()}={cap}" if cap else "")


@dataclass
class OpenVINOModel:
    """The IR parts of one weights file, read but not compiled (`ov.Model` per part)."""

    parts: Mapping[str, Any]
    manifest: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    # Compiled parts by (part, threads, inference precision): runners of several precisions share
    # the f32 embed and rest (a start-up re-check compiles those once).
    compiled: dict[tuple[str, int, str], Any] = field(default_factory=dict, repr=False)
    # Compiled blobs in the IR folder (compiled/index.json rows), and how each compiled part was made.
    blobs: list[dict[str, Any]] = field(default_factory=list, repr=False)
    made: dict[tuple[str, int, str], str] = field(default_factory=dict, repr=False)

    def blob_for(self, part: str, threads: int, inference_precision: str) -> Path | None:
        """The compiled blob of this part for this CPU class, threads and precision, if one was written."""
        if self.folder is None or not self.blobs:
            return None
        cls = cpu_class()
        for b in self.blobs:
            if (b["part"], b["threads"], b["inference_precision"], b["cpu_class"]) == (
                part,
                threads,
                inference_precision,
                cls,
            ):
                return self.folder / COMPILED_DIR / str(b["file"])
        return None

    def compile(self, part: str, threads: int, inference_precision: str) -> Any:
        """The part compiled for the CPU with these settings (cached): imported from its compiled
        blob when there is one for this CPU class, else compiled from the IR."""
        key = (part, threads, inference_precision)
        if key not in self.compiled:
            config = compile_config(threads, inference_precision)
            blob = self.blob_for(part, threads, inference_precision)
            if blob is not None:
                try:
                    import openvino as ov

                    data = np.fromfile(blob, dtype=np.uint8)
                    self.compiled[key] = core().import_model(ov.Tensor(data), "CPU", config)
                    self.made[key] = "imported"
                except (OSError, RuntimeError) as exc:  # another ISA or OpenVINO: OpenVINO refuses, compile instead
                    _LOG.warning("compiled blob %s not used (%s); compiling %s", blob, str(exc).strip()[-200:], part)
            if key not in self.compiled:
                self.compiled[key] = core().compile_model(self.parts[part], "CPU", config)
                self.made[key] = "compiled"
        return self.compiled[key]

    @property
    def precisions(self) -> tuple[str, ...]:
        """Precisions this IR can run: fp32 and bf16 always, int8 when `blocks_int8` was written."""
        return PRECISIONS if INT8_PART in self.parts else tuple(p for p in PRECISIONS if p != "int8")


def save(
    model: OpenVINOModel,
    folder: Path | str,
    weights: Path | str,
    *,
    weights_fp16: bool,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the parts and manifest.json into `folder` (replaced whole); return the manifest.

    `weights_fp16`: every weight is exactly an fp16 value, so `F16_SAFE_PARTS` are stored f16
    (half the bytes, same results); everything else is stored f32.
    """
    import shutil

    import openvino as ov

    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    files, stored = {}, {}
    for name, part in model.parts.items():
        f16 = weights_fp16 and name in F16_SAFE_PARTS
        ov.save_model(part, tmp / f"{name}.xml", compress_to_fp16=f16)
        files[name] = f"{name}.xml"
        stored[name] = "int8 weights" if name == INT8_PART else ("f16 (lossless)" if f16 else "f32")
    weights = Path(weights)
    manifest = {
        "format": IR_FORMAT,
        "version": IR_VERSION,
        "openvino": openvino_version(),
        "weights": {"file": weights.name, "sha256": weights_sha256(weights), "bytes": weights.stat().st_size},
        "parts": files,
        "stored": stored,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(facts or {}),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    tmp.replace(folder)
    return manifest


def load(folder: Path | str, weights: Path | str | None = None) -> OpenVINOModel:
    """Read the IR in `folder`; with `weights`, refuse an IR converted from other weights."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise OpenVINOIRError(
            f"{folder}: no {MANIFEST}; write the IR with `cosmicai convert-checkpoint WEIGHTS --openvino`"
        ) from None
    except ValueError as exc:
        raise OpenVINOIRError(f"{folder / MANIFEST}: not JSON ({exc})") from None
    if manifest.get("format") != IR_FORMAT or manifest.get("version") != IR_VERSION:
        raise OpenVINOIRError(
            f"{folder}: not a {IR_FORMAT} v{IR_VERSION} folder (manifest says {manifest.get('format')} "
            f"v{manifest.get('version')})"
        )
    if weights is not None:
        want = manifest.get("weights", {})
        weights = Path(weights)
        if weights.stat().st_size != want.get("bytes") or weights_sha256(weights) != want.get("sha256"):
            raise OpenVINOIRError(
                f"{folder} was converted from other weights than {weights} (sha256 differs); "
                f"re-run `cosmicai convert-checkpoint {weights} --openvino`"
            )
    files = {}
    for name, xml in manifest.get("parts", {}).items():
        if not (folder / xml).is_file():
            raise OpenVINOIRError(f"{folder}: part {name} ({xml}) is missing")
        files[name] = folder / xml
    missing = [p for p in PARTS if p not in files]
    if missing:
        raise OpenVINOIRError(f"{folder}: parts {', '.join(missing)} are missing")
    return OpenVINOModel(LazyParts(files), manifest, folder, blobs=_compiled_blobs(folder, manifest))


def _compiled_blobs(folder: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The usable rows of compiled/index.json: written by this OpenVINO from this IR (else none)."""
    path = folder / COMPILED_DIR / COMPILED_INDEX
    if not path.is_file():
        return []
    try:
        index = json.loads(path.read_text())
    except ValueError:
        _LOG.warning("%s is not JSON; compiling from the IR", path)
        return []
    if index.get("format") != COMPILED_FORMAT or index.get("ir_created") != manifest.get("created"):
        _LOG.warning("%s is not for this IR; compiling from the IR", path)
        return []
    if index.get("openvino") != openvino_version():
        _LOG.warning(
            "%s was written by OpenVINO %s, this is %s; compiling from the IR",
            path,
            index.get("openvino"),
            openvino_version(),
        )
        return []
    return list(index.get("blobs", []))


def export_compiled(
    folder: Path | str,
    weights: Path | str | None = None,
    threads: Iterable[int] = (1,),
    precisions: Iterable[str] | None = None,
    parts: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Compile the parts every precision needs for this CPU class and write them as blobs into
    `folder/compiled/` (rows of other classes kept, this class's replaced); returns the index.

    `precisions` default: those of the IR, bf16 only on a CPU with native bf16 (elsewhere the plugin
    compiles it f32, which is the fp32 blob). `parts` default: all; a part left out is compiled at
    INIT (the inference image leaves out `rest`: its blob holds 42 MB of f32 weights, over the image's
    size budget, for ~0.1 s of compilation). Each blob is imported back and checked against the part
    compiled from the IR on synthetic inputs before it is recorded (`BlobMismatchError` otherwise).
    """
    from cosmicai import procstats

    folder = Path(folder)
    model = load(folder, weights)
    if precisions is None:
        native = bool(procstats.cpu_info()[1] & procstats.NATIVE_BF16)
        precisions = [p for p in model.precisions if p != "bf16" or native]
    cls = cpu_class()
    slug = hashlib.sha256(cls.encode()).hexdigest()[:12]
    out = folder / COMPILED_DIR
    (out / slug).mkdir(parents=True, exist_ok=True)
    path = out / COMPILED_INDEX
    old = json.loads(path.read_text()) if path.is_file() else {}
    keep = old.get("blobs", []) if old.get("ir_created") == model.manifest.get("created") else []
    rows = [b for b in keep if b.get("cpu_class") != cls]
    for t in threads:
        for p in precisions:
            blocks_part, blocks_precision = BLOCKS_FOR[p]
            for part, prec in (("embed", "f32"), (blocks_part, blocks_precision), ("rest", "f32")):
                name = f"{slug}/{part}-t{t}-{prec}.blob"
                if any(r["file"] == name for r in rows) or (parts is not None and part not in set(parts)):
                    continue
                t0 = time.perf_counter()
                compiled = core().compile_model(model.parts[part], "CPU", compile_config(t, prec))
                seconds = time.perf_counter() - t0
                buf = io.BytesIO()
                compiled.export_model(buf)
                _check_blob(compiled, buf.getvalue(), compile_config(t, prec), f"{part} ({prec}, {t} thread(s))")
                (out / name).write_bytes(buf.getvalue())
                rows.append(
                    {
                        "part": part,
                        "threads": t,
                        "inference_precision": prec,
                        "cpu_class": cls,
                        "file": name,
                        "bytes": (out / name).stat().st_size,
                        "compile_s": round(seconds, 3),
                    }
                )
    index = {
        "format": COMPILED_FORMAT,
        "openvino": openvino_version(),
        "ir_created": model.manifest.get("created"),
        "weights_sha256": (model.manifest.get("weights") or {}).get("sha256"),
        "blobs": rows,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n")
    tmp.replace(path)
    return index


def load_for_weights(weights: Path | str) -> OpenVINOModel:
    """The IR next to `weights`; without one, convert in memory (imports torch, takes seconds) and warn."""
    folder = ir_dir(weights)
    if (folder / MANIFEST).is_file():
        return load(folder, weights)
    warnings.warn(
        f"no OpenVINO IR at {folder}: converting {weights} now (seconds, and it imports torch); "
        f"write it once with `cosmicai convert-checkpoint {weights} --openvino`",
        RuntimeWarning,
        stacklevel=2,
    )
    from cosmicai.weights import load_model

    return as_openvino_model(load_model(weights))


def as_openvino_model(model: Any) -> OpenVINOModel:
    """`model` if it already is an OpenVINOModel, else an AstroMAE converted in memory (no int8 part)."""
    if isinstance(model, OpenVINOModel):
        return model
    if type(model).__name__ != "AstroMAE":
        raise EngineError(f"the openvino backend needs an OpenVINOModel or an AstroMAE, got {type(model).__name__}")
    from cosmicai.openvino_convert import convert

    parts, facts = convert(model)
    return OpenVINOModel(parts, {"converted": "in memory", **facts})


def compile_config(threads: int, inference_precision: str) -> dict[str, Any]:
    """CPU plugin settings: one stream of `threads` threads, latency mode, the given precision."""
    return {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        # Explicit: on a CPU with bf16 the plugin's default for every part would be bf16.
        "INFERENCE_PRECISION_HINT": inference_precision,
    }


class OpenVINORunner:
    """Three compiled parts run per micro-batch: embed (f32) -> blocks (the precision) -> rest (f32)."""

    backend = "openvino"

    def __init__(self, model: OpenVINOModel, precision: str, threads: int, micro_batch: int) -> None:
        if precision not in BLOCKS_FOR:
            raise EngineError(f"precision {precision!r} unknown to the openvino backend")
        blocks_part, blocks_precision = BLOCKS_FOR[precision]
        if blocks_part not in model.parts:
            raise EngineError(
                f"precision {precision} needs the IR part {blocks_part}, which this IR lacks "
                "(convert with a calibration set: `cosmicai convert-checkpoint WEIGHTS --openvino`)"
            )
        self.precision = precision
        self.threads = threads
        self.micro_batch = micro_batch
        t0 = time.perf_counter()
        self._embed = model.compile("embed", threads, "f32").create_infer_request()
        blocks = model.compile(blocks_part, threads, blocks_precision)
        self.blocks_inference_precision = str(blocks.get_property("INFERENCE_PRECISION_HINT"))
        self._blocks = blocks.create_infer_request()
        self._rest = model.compile("rest", threads, "f32").create_infer_request()
        self.compile_s = time.perf_counter() - t0
        self.keys = (("embed", threads, "f32"), (blocks_part, threads, blocks_precision), ("rest", threads, "f32"))
        if precision == "bf16" and "bf16" not in self.blocks_inference_precision.replace("bfloat16", "bf16"):
            warnings.warn(
                f"OpenVINO compiled the bf16 blocks as {self.blocks_inference_precision}: this CPU has no native bf16",
                RuntimeWarning,
                stacklevel=3,
            )

    def start(self) -> None:
        """Nothing per call: the thread count is part of each compiled model."""

    def run(self, images: np.ndarray, magnitudes: np.ndarray) -> np.ndarray:
        """Redshifts float32 (n,) for one batch."""
        n = images.shape[0]
        out = np.empty(n, dtype=np.float32)
        for s in range(0, n, self.micro_batch):
            e = min(n, s + self.micro_batch)
            img = images[s:e]
            tokens = self._embed.infer([img], share_inputs=True, share_outputs=True)[0]
            tokens = self._blocks.infer([tokens], share_inputs=True, share_outputs=True)[0]
            z = self._rest.infer([tokens, img, magnitudes[s:e]], share_inputs=True, share_outputs=True)[0]
            out[s:e] = z[:, 0]
        return out


class BlobMismatchError(OpenVINOIRError):
    """A compiled blob, imported back, does not compute what the part compiled from the IR does."""


def _check_blob(compiled: Any, blob: bytes, config: dict[str, Any], what: str, tol: float = 1e-6) -> None:
    """Import `blob` and compare it with `compiled` on seeded synthetic inputs (dynamic dims = 3)."""
    import openvino as ov

    imported = core().import_model(ov.Tensor(np.frombuffer(blob, dtype=np.uint8).copy()), "CPU", config)
    rng = np.random.default_rng(0)
    inputs = []
    for port in compiled.inputs:
        shape = [3 if d.is_dynamic else d.get_length() for d in port.get_partial_shape()]
        inputs.append(rng.normal(0.0, 0.5, shape).astype(np.float32))
    want = compiled.create_infer_request().infer(inputs)[0]
    got = imported.create_infer_request().infer(inputs)[0]
    diff = float(np.abs(np.asarray(got) - np.asarray(want)).max())
    if not diff <= tol:
        raise BlobMismatchError(f"the compiled blob of {what} differs from the compiled IR by {diff:.1e}; not written")


def main(argv: list[str] | None = None) -> int:
    """`python -m cosmicai.engine_openvino export-compiled WEIGHTS [--threads 1] [--precisions fp32,int8]`."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m cosmicai.engine_openvino", description=export_compiled.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export-compiled", help="compiled blobs of the IR next to WEIGHTS, for this CPU class")
    e.add_argument("weights", type=Path)
    e.add_argument("--threads", default="1", help="comma-separated thread counts (default 1: Lambda at 1,769 MB)")
    e.add_argument("--precisions", default=None, help="comma-separated (default: the IR's; bf16 only if native)")
    e.add_argument(
        "--parts", default=None, help="comma-separated parts to write (default: all; others compile at INIT)"
    )
    args = p.parse_args(argv)
    index = export_compiled(
        ir_dir(args.weights),
        args.weights,
        threads=[int(x) for x in args.threads.split(",") if x.strip()],
        precisions=[x.strip() for x in args.precisions.split(",") if x.strip()] if args.precisions else None,
        parts=[x.strip() for x in args.parts.split(",") if x.strip()] if args.parts else None,
    )
    cls = cpu_class()
    mine = [b for b in index["blobs"] if b["cpu_class"] == cls]
    print(
        f"{ir_dir(args.weights) / COMPILED_DIR}: {len(mine)} compiled parts for CPU class {cls!r}, "
        f"{sum(b['bytes'] for b in mine) / 1e6:.1f} MB ({len(index['blobs'])} in all)"
    )
    return 0


__all__ = [
    "BLOCKS_FOR",
    "COMPILED_DIR",
    "BlobMismatchError",
    "INT8_PART",
    "IR_SUFFIX",
    "OpenVINOIRError",
    "OpenVINOModel",
    "OpenVINORunner",
    "LazyParts",
    "as_openvino_model",
    "compile_config",
    "core",
    "cpu_class",
    "export_compiled",
    "ir_dir",
    "load",
    "load_for_weights",
    "save",
]


if __name__ == "__main__":
    raise SystemExit(main())
