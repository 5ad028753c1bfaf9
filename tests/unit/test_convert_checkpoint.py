"""Checkpoint conversion: reference state dicts and the whole pickled DataParallel model.

The reference-shaped model is built here from tests/unit/refmodel (module and class
names of timm 0.4.12 and the reference `blocks` package), saved, and then those
modules are removed so conversion has to work without them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cosmicai import weights as W
from cosmicai.cli import main as cli_main
from cosmicai.model import AstroMAE

REFMODEL = Path(__file__).parent / "refmodel"
_REF_PACKAGES = ("timm", "blocks")


def _drop_ref_modules() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in _REF_PACKAGES:
            del sys.modules[name]


def _build_reference() -> nn.Module:
    from blocks.model_vit_inception import ViT_Astro
    from timm.models.vision_transformer import VisionTransformer

    mae = VisionTransformer()
    parts = {k: getattr(mae, k) for k in ("cls_token", "pos_embed", "blocks", "patch_embed")}
    ref = ViT_Astro(192, parts)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):  # non-trivial running stats and affine
                m.running_mean.normal_(0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 2.0, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
                m.num_batches_tracked.fill_(1234)
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
    return ref.eval()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Reference checkpoints in three forms, inputs, and the reference model's outputs."""
    folder = tmp_path_factory.mktemp("ref")
    sys.path.insert(0, str(REFMODEL))
    try:
        torch.manual_seed(1)
        ref = _build_reference()
        images = torch.randn(6, 5, 32, 32)
        mags = torch.randn(6, 5, dtype=torch.float64) + 18.0
        with torch.inference_mode():
            expected = ref((images, mags))
        dp = nn.DataParallel(ref)
        paths = {
            "whole": folder / "astromae_whole.pt",
            "plain": folder / "state_plain.pt",
            "prefixed": folder / "state_module.pt",
            "whole_legacy": folder / "astromae_whole_legacy.pt",
        }
        torch.save(dp, paths["whole"])
        # torch < 1.6 wrote this non-zip layout; old checkpoints may still use it.
        torch.save(dp, paths["whole_legacy"], _use_new_zipfile_serialization=False)
        torch.save(ref.state_dict(), paths["plain"])
        torch.save(dp.state_dict(), paths["prefixed"])
        state = {k: v.clone() for k, v in ref.state_dict().items()}
    finally:
        sys.path.remove(str(REFMODEL))
        _drop_ref_modules()
    assert importlib.util.find_spec("blocks") is None
    assert "timm" not in sys.modules
    return {"paths": paths, "images": images, "mags": mags, "expected": expected, "state": state}


def _outputs(path: Path, images: torch.Tensor, mags: torch.Tensor) -> torch.Tensor:
    model = W.load_model(path)
    with torch.inference_mode():
        return model(images, mags)


def test_name_map_covers_every_reference_entry(reference):
    ref_state = reference["state"]
    assert len(W.REFERENCE_NAME_MAP) == 388 == len(ref_state)
    assert set(W.REFERENCE_NAME_MAP) == set(ref_state)
    ours = AstroMAE().state_dict()
    assert set(W.REFERENCE_NAME_MAP.values()) == set(ours)
    for ref_name, our_name in W.REFERENCE_NAME_MAP.items():
        assert ref_state[ref_name].shape == ours[our_name].shape, ref_name
    changed = {k: v for k, v in W.REFERENCE_NAME_MAP.items() if k != v}
    assert len(changed) == 10
    assert all(k.startswith("inception_model.magnitude_block.") for k in changed)


def test_whole_pickle_refused_without_trust(reference, tmp_path):
    dst = tmp_path / "w.safetensors"
    with pytest.raises(W.UntrustedPickleError, match="--trust-pickle") as info:
        W.convert_checkpoint(reference["paths"]["whole"], dst)
    assert str(reference["paths"]["whole"]) in str(info.value)
    assert not dst.exists()


def test_whole_pickle_cannot_be_loaded_normally_without_the_reference_code(reference):
    # Proves the conversion below does not lean on timm/blocks being importable.
    with pytest.raises(ModuleNotFoundError):
        torch.load(reference["paths"]["whole"], weights_only=False)


@pytest.mark.parametrize("form", ["whole", "whole_legacy"])
def test_whole_pickle_converts_to_identical_outputs(reference, tmp_path, form):
    dst = tmp_path / "w.safetensors"
    summary = W.convert_checkpoint(reference["paths"][form], dst, trust_pickle=True)
    assert summary["source_form"] == "pickled_model" and summary["entries"] == 388
    assert "timm" not in sys.modules and "blocks" not in sys.modules
    got = _outputs(dst, reference["images"], reference["mags"])
    diff = (got - reference["expected"]).abs().max().item()
    assert diff < 1e-5, diff
    assert reference["expected"].abs().max().item() > 1e-3  # outputs are not trivially zero


@pytest.mark.parametrize("form", ["plain", "prefixed"])
def test_state_dicts_convert_without_trust(reference, tmp_path, form):
    dst = tmp_path / f"{form}.safetensors"
    summary = W.convert_checkpoint(reference["paths"][form], dst)
    assert summary["source_form"] == "state_dict"
    got = _outputs(dst, reference["images"], reference["mags"])
    assert (got - reference["expected"]).abs().max().item() < 1e-5
    state = W.load_state_dict(dst)
    assert state["inception_model.vis_inception.5.branch1.bn.num_batches_tracked"].item() == 1234


def test_fp16_conversion_halves_the_file(reference, tmp_path):
    full, half = tmp_path / "f32.safetensors", tmp_path / "f16.safetensors"
    W.convert_checkpoint(reference["paths"]["plain"], full)
    W.convert_checkpoint(reference["paths"]["plain"], half, dtype=torch.float16)
    assert half.stat().st_size < 0.55 * full.stat().st_size
    got = _outputs(half, reference["images"], reference["mags"])
    assert got.dtype == torch.float32
    assert (got - reference["expected"]).abs().max().item() < 5e-2


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_trusted_pickle_still_refuses_foreign_globals(tmp_path):
    marker = tmp_path / "PWNED"
    src = tmp_path / "evil.pt"
    torch.save({"model": _Evil(marker)}, src)
    with pytest.raises(W.UnsafePickleError, match="posix.system|os.system"):
        W.convert_checkpoint(src, tmp_path / "out.safetensors", trust_pickle=True)
    assert not marker.exists()


def test_invalid_checkpoint_lists_wrong_keys_and_shapes(reference, tmp_path):
    state = dict(reference["state"])
    del state["head.bias"]
    state["extra.weight"] = torch.zeros(2)
    state["blocks.3.mlp.fc1.weight"] = torch.zeros(10, 192)
    src = tmp_path / "broken.pt"
    torch.save(state, src)
    with pytest.raises(W.InvalidCheckpointError) as info:
        W.convert_checkpoint(src, tmp_path / "out.safetensors")
    msg = str(info.value)
    assert str(src) in msg
    assert "1 missing: head.bias" in msg
    assert "1 unexpected: extra.weight" in msg
    assert "blocks.3.mlp.fc1.weight (10, 192) (expected (768, 192))" in msg


def test_garbage_and_missing_sources(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(W.InvalidCheckpointError, match="junk.pt"):
        W.convert_checkpoint(junk, tmp_path / "o.safetensors")
    with pytest.raises(W.WeightsNotFoundError, match="nope.pt"):
        W.convert_checkpoint(tmp_path / "nope.pt", tmp_path / "o.safetensors")


def test_cli_convert_checkpoint(reference, tmp_path, capsys):
    src, dst = reference["paths"]["whole"], tmp_path / "cli.safetensors"
    assert cli_main(["convert-checkpoint", str(src), str(dst)]) == 2  # docs/inference.md: exit 2 on refusal
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and not dst.exists()
    assert cli_main(["convert-checkpoint", str(src), str(dst), "--trust-pickle", "--fp16"]) == 0
    out = capsys.readouterr().out
    assert "388" in out and dst.exists()
    assert W.load_state_dict(dst)["head.weight"].dtype == torch.float32


def test_corrupt_pickle_is_invalid_not_untrusted(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x80\x02" + bytes(range(256)) * 4)
    with pytest.raises(W.InvalidCheckpointError, match="corrupt.pt"):
        W.convert_checkpoint(bad, tmp_path / "o.safetensors", trust_pickle=True)
