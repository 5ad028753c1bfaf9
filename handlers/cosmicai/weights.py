"""AstroMAE weights: safetensors on disk, the reference name map, checkpoint conversion.

Weights are stored as safetensors (fp32 or fp16 on disk, always loaded as fp32).
`convert_checkpoint` turns a reference checkpoint into that form: a plain state
dict saved with `torch.save` (read with `weights_only=True`), or the published
whole-model pickle of `nn.DataParallel(ViT_Astro)`, which is only opened when the
caller says it trusts the file and then only through a restricted unpickler that
builds inert placeholders instead of timm / reference / torch.nn classes.
"""

from __future__ import annotations

import functools
import io
import pickle
import struct
import types
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from cosmicai import weightsfile
from cosmicai.model import AstroMAE

# Re-exported (`X as X` marks a re-export for mypy and ruff): the torch-free part lives in weightsfile.
from cosmicai.weightsfile import (
    PACKAGED_WEIGHTS as PACKAGED_WEIGHTS,
    WEIGHTS_ENV as WEIGHTS_ENV,
    WEIGHTS_FORMAT as WEIGHTS_FORMAT,
    WeightsError as WeightsError,
    WeightsNotFoundError as WeightsNotFoundError,
    resolve_weights_path as resolve_weights_path,
    sidecar as sidecar,
    weights_sha256 as weights_sha256,
)


class InvalidCheckpointError(WeightsError):
    """A checkpoint whose tensors do not fit AstroMAE (names, shapes, values)."""


class UntrustedPickleError(WeightsError):
    """A pickled Python object was found and the caller did not pass trust_pickle=True."""


class UnsafePickleError(WeightsError):
    """A trusted pickle referenced a global outside the restricted unpickler's allow-list."""


# --------------------------------------------------------------- name map


def _reference_name(our_name: str) -> str:
    # The only difference: the reference's magnitude MLP lives inside its Input_Mix_Model.
    return f"inception_model.{our_name}" if our_name.startswith("magnitude_block.") else our_name


def _our_name(ref_name: str) -> str:
    return ref_name.replace("inception_model.magnitude_block.", "magnitude_block.", 1)


@functools.cache
def _reference_names() -> tuple[str, ...]:
    # A plain CPU model (~60 ms, built once, on first use; not at import: the infer INIT imports this module).
    return tuple(_reference_name(name) for name in AstroMAE().state_dict())


def reference_state_dict_names() -> list[str]:
    """The 388 state-dict names of the reference `ViT_Astro`: AstroMAE's (cosmicai.model builds the
    reference's module tree, its Sequentials' positions and the conv registered twice included), with
    the magnitude MLP back inside `inception_model`."""
    return list(_reference_names())


@functools.cache
def reference_name_map() -> dict[str, str]:
    """Reference `ViT_Astro` state-dict name -> AstroMAE name (identity except the magnitude MLP)."""
    return {n: _our_name(n) for n in _reference_names()}


def __getattr__(name: str) -> dict[str, str]:
    # REFERENCE_NAME_MAP (= reference_name_map()), built on first use.
    if name == "REFERENCE_NAME_MAP":
        return reference_name_map()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The reference registers one conv under two names; both must hold the same tensor.
_ALIASED = ("inception_model.conv2d_init", "inception_model.vis_inception.0")


# --------------------------------------------------------------- paths


def default_weights_path() -> Path:
    """$COSMICAI_WEIGHTS if set, else the packaged demo weights; raises if the file is absent."""
    return weightsfile.default_weights_path(PACKAGED_WEIGHTS)


# --------------------------------------------------------------- safetensors I/O


def save_weights(
    model_or_state: torch.nn.Module | dict[str, torch.Tensor],
    path: Path | str,
    *,
    dtype: torch.dtype | None = None,
    metadata: dict[str, str] | None = None,
) -> int:
    """Write a state dict as safetensors (floating tensors cast to `dtype` if given); return bytes."""
    from safetensors.torch import save

    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    tensors: dict[str, torch.Tensor] = {}
    for name, t in state.items():
        t = t.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        # clone: safetensors refuses tensors that share storage (the aliased conv).
        tensors[name] = t.contiguous().clone()
    stored = dtype or next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
    meta = {"format": WEIGHTS_FORMAT, "model": "AstroMAE", "dtype": str(stored).removeprefix("torch.")}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    data = save(tensors, metadata=meta)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def load_state_dict(path: Path | str) -> dict[str, torch.Tensor]:
    """Read a safetensors weights file; floating tensors come back as fp32."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise WeightsNotFoundError(f"{path}: no such weights file") from exc
    try:
        state = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InvalidCheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def check_state_dict(state: dict[str, torch.Tensor], source: str, model: AstroMAE | None = None) -> None:
    """Raise InvalidCheckpointError listing missing, unexpected and mis-shaped entries."""
    # A plain CPU model (about 60 ms): the meta device would cost over a second on
    # first use because its random init goes through torch's Python decompositions.
    reference = model if model is not None else AstroMAE()
    expected = {k: (v.shape, v.dtype) for k, v in reference.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k][0])})"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k][0])
    ]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            more = f" ... and {len(items) - 8} more" if len(items) > 8 else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:8])}{more}")
    if problems:
        raise InvalidCheckpointError(f"{source}: does not fit AstroMAE: " + "; ".join(problems))
    a, b = (f"{_ALIASED[0]}.weight", f"{_ALIASED[1]}.weight")
    if not torch.equal(state[a], state[b]):
        raise InvalidCheckpointError(f"{source}: {a} and {b} must be the same conv but differ")
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise InvalidCheckpointError(f"{source}: NaN/inf in {', '.join(bad[:8])}")


def load_model(path: Path | str | None = None) -> AstroMAE:
    """AstroMAE in eval mode, fp32, from a safetensors file (None: `default_weights_path()`)."""
    path = default_weights_path() if path is None else Path(path)
    state = load_state_dict(path)
    model = AstroMAE()
    check_state_dict(state, str(path), model)
    # Copy (not assign) keeps the shared conv shared and every tensor fp32 contiguous.
    model.load_state_dict(state, strict=True)
    return model.eval()


# --------------------------------------------------------------- restricted unpickler


class _Placeholder:
    """Inert stand-in for a pickled class: records constructor args and state, runs nothing."""

    _qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = state

    def __repr__(self) -> str:
        return f"<placeholder {self._qualname}>"


_PLACEHOLDER_PREFIXES = ("timm.", "blocks.", "torch.nn.modules.", "torch.nn.parallel.")
_TORCH_FUNCTIONS = {
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
}
_OTHER_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only tensors, containers and placeholder modules; refuses the rest."""

    _placeholders: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol-2 pickles use the Python 2 name
            module = "builtins"
        if (module, name) in _TORCH_FUNCTIONS:
            return getattr(__import__(module, fromlist=[name]), name)
        if (module, name) in _OTHER_GLOBALS:
            return _OTHER_GLOBALS[(module, name)]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if module.startswith(_PLACEHOLDER_PREFIXES) and name.isidentifier():
            qual = f"{module}.{name}"
            cls = self._placeholders.get(qual)
            if cls is None:
                cls = type(name, (_Placeholder,), {"_qualname": qual, "__module__": __name__})
                self._placeholders[qual] = cls
            return cls
        raise UnsafePickleError(
            f"refusing pickled global {module}.{name}: only tensors, containers and "
            "timm / blocks / torch.nn module classes (as inert placeholders) are allowed"
        )


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return _RestrictedUnpickler(file, **kwargs).load()


_RESTRICTED_PICKLE = types.SimpleNamespace(
    Unpickler=_RestrictedUnpickler, load=_restricted_load, __name__="cosmicai_restricted_pickle"
)


def _module_state(obj: _Placeholder, prefix: str, out: dict[str, torch.Tensor], source: str) -> None:
    state: dict[str, Any] = obj.state if isinstance(obj.state, dict) else {}
    if "_modules" not in state:
        raise InvalidCheckpointError(f"{source}: pickled {obj._qualname} is not an nn.Module")
    skip = set(state.get("_non_persistent_buffers_set") or ())
    for key in ("_parameters", "_buffers"):
        for name, t in (state.get(key) or {}).items():
            if t is not None and name not in skip:
                if not isinstance(t, torch.Tensor):
                    raise InvalidCheckpointError(f"{source}: {prefix}{name} is not a tensor")
                out[prefix + name] = t.detach()
    for name, child in (state.get("_modules") or {}).items():
        if child is not None:
            if not isinstance(child, _Placeholder):
                raise InvalidCheckpointError(f"{source}: child {prefix}{name} is not a module")
            _module_state(child, f"{prefix}{name}.", out, source)


def _load_trusted_pickle(data: bytes, source: str) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():
            # Legacy (pre-zip) files make torch compare each module class's source
            # with the saved one; our placeholders have none, which is expected.
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code for container")
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False, pickle_module=_RESTRICTED_PICKLE)
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    return _extract_state(obj, source)


def _extract_state(obj: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, _Placeholder):
        out: dict[str, torch.Tensor] = {}
        _module_state(obj, "", out, source)
        return out
    if isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in ("model", "state_dict", "model_state_dict", "module"):
            if key in obj:
                return _extract_state(obj[key], source)
    raise InvalidCheckpointError(f"{source}: holds a {type(obj).__name__}; expected a state dict or a pickled model")


# --------------------------------------------------------------- conversion


def _read_checkpoint(data: bytes, source: str, trust_pickle: bool) -> tuple[dict[str, torch.Tensor], str]:
    if len(data) >= 9 and data[8:9] == b"{" and struct.unpack("<Q", data[:8])[0] < len(data):
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return dict(load(data)), "safetensors"
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise InvalidCheckpointError(f"{source}: corrupt safetensors ({exc})") from exc
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()
        detail = next((line for line in reason if "GLOBAL" in line or "global" in line), "")
        if not detail:  # not a refused class: the pickle stream itself is broken
            raise InvalidCheckpointError(f"{source}: corrupt pickle ({reason[-1] if reason else exc})") from exc
        if not trust_pickle:
            raise UntrustedPickleError(
                f"{source}: holds pickled Python objects, not just tensors ({detail.strip()[:200]}). "
                "Unpickling can run arbitrary code, so it is refused by default. If you trust this "
                "file (e.g. the published AstroMAE checkpoint), rerun with --trust-pickle "
                "(trust_pickle=True): it is then read by a restricted unpickler that only builds "
                "inert placeholders for timm / reference / torch.nn classes."
            ) from None
    except Exception as exc:  # torch raises many types on garbage bytes; all mean "unreadable"
        raise InvalidCheckpointError(
            f"{source}: not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    else:
        return _extract_state(obj, source), "state_dict"
    return _load_trusted_pickle(data, source), "pickled_model"


def to_our_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DataParallel's `module.` prefix and map reference names to AstroMAE names."""
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    names = reference_name_map()
    return {names.get(k, k): v for k, v in state.items()}


def convert_checkpoint(
    src: Path | str, dst: Path | str, *, trust_pickle: bool = False, dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """Convert a reference checkpoint (state dict or, if trusted, pickled model) to safetensors.

    Returns a summary: source form, entry count, bytes written.
    """
    src = Path(src)
    try:
        data = src.read_bytes()
    except FileNotFoundError as exc:
        raise WeightsNotFoundError(f"{src}: no such checkpoint") from exc
    state, form = _read_checkpoint(data, str(src), trust_pickle)
    state = to_our_names(state)
    check_state_dict(state, str(src))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    nbytes = save_weights(state, dst, dtype=dtype, metadata={"converted_from": src.name, "source_form": form})
    return {"source_form": form, "entries": len(state), "bytes": nbytes, "dst": str(dst)}
