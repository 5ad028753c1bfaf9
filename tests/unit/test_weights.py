"""Safetensors weights: save/load, default path resolution, load_model, validation."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from cosmicai import weights as W
from cosmicai.model import AstroMAE


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return AstroMAE().eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "m.safetensors"
    W.save_weights(model, path, metadata={"note": "test"})
    return path


def test_round_trip_is_exact(model, saved):
    state = W.load_state_dict(saved)
    ref = model.state_dict()
    assert set(state) == set(ref) and len(state) == 388
    for k, v in ref.items():
        assert torch.equal(state[k], v), k
    with safe_open(str(saved), "pt") as f:
        meta = f.metadata()
    assert meta["format"] == "cosmicai.weights" and meta["note"] == "test" and meta["dtype"] == "float32"


def test_load_model_gives_same_outputs(model, saved):
    loaded = W.load_model(saved)
    assert not loaded.training
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert all(p.device.type == "cpu" for p in loaded.state_dict().values())
    assert loaded.inception_model.vis_inception[0] is loaded.inception_model.conv2d_init
    x, m = torch.randn(3, 5, 32, 32), torch.randn(3, 5) + 18
    with torch.inference_mode():
        assert torch.equal(loaded(x, m), model(x, m))


def test_fp16_on_disk_loads_as_fp32(model, tmp_path):
    path = tmp_path / "h.safetensors"
    W.save_weights(model, path, dtype=torch.float16)
    state = W.load_state_dict(path)
    assert state["head.weight"].dtype == torch.float32
    assert state["inception_model.vis_inception.2.branch1.bn.num_batches_tracked"].dtype == torch.int64
    assert torch.allclose(state["head.weight"], model.head.weight, atol=1e-3)


def test_default_path_from_env(saved, monkeypatch, tmp_path):
    monkeypatch.setenv("COSMICAI_WEIGHTS", str(saved))
    assert W.default_weights_path() == saved
    assert isinstance(W.load_model(), AstroMAE)
    monkeypatch.setenv("COSMICAI_WEIGHTS", str(tmp_path / "absent.safetensors"))
    with pytest.raises(W.WeightsNotFoundError, match="COSMICAI_WEIGHTS=.*absent"):
        W.default_weights_path()


def test_missing_packaged_weights_say_how_to_get_them(monkeypatch):
    monkeypatch.delenv("COSMICAI_WEIGHTS", raising=False)
    monkeypatch.setattr(W, "PACKAGED_WEIGHTS", "no-such-file.safetensors")
    with pytest.raises(W.WeightsNotFoundError) as info:
        W.default_weights_path()
    msg = str(info.value)
    assert "COSMICAI_WEIGHTS" in msg and "convert-checkpoint" in msg and "no-such-file" in msg


def test_packaged_default_points_into_the_package(monkeypatch):
    monkeypatch.delenv("COSMICAI_WEIGHTS", raising=False)
    try:
        path = W.default_weights_path()
    except W.WeightsNotFoundError as exc:
        assert "cosmicai/assets/astromae-demo.safetensors" in str(exc)
    else:
        assert path.name == "astromae-demo.safetensors" and path.parent.name == "assets"


def test_invalid_weights_files(model, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(W.InvalidCheckpointError, match="bad.safetensors"):
        W.load_model(bad)
    with pytest.raises(W.WeightsNotFoundError, match="gone.safetensors"):
        W.load_model(tmp_path / "gone.safetensors")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["head.weight"][0, 0] = float("nan")
    nan = tmp_path / "nan.safetensors"
    W.save_weights(state, nan)
    with pytest.raises(W.InvalidCheckpointError, match="NaN/inf in head.weight"):
        W.load_model(nan)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["inception_model.vis_inception.0.weight"] += 1
    alias = tmp_path / "alias.safetensors"
    W.save_weights(state, alias)
    with pytest.raises(W.InvalidCheckpointError, match="same conv"):
        W.load_model(alias)
