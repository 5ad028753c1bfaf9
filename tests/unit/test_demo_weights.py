"""The packaged demo weights: they load, match the sha256 in their model card, and carry a real redshift signal."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmicai.data.generate import make_dataset
from cosmicai.data.modelcard import sha256_file
from cosmicai.data.train import load_split
from cosmicai.metrics import compute_metrics
from cosmicai.weights import PACKAGED_WEIGHTS, default_weights_path, load_model

ASSETS = Path(str(resources.files("cosmicai") / "assets"))
# A seed none of the demo weights' splits used (train 1, validation 2, test 3).
FRESH_SEED = 11


@pytest.fixture(scope="module")
def demo_model() -> torch.nn.Module:
    return load_model(ASSETS / PACKAGED_WEIGHTS)


def test_default_weights_are_the_packaged_demo_weights(monkeypatch) -> None:
    monkeypatch.delenv("COSMICAI_WEIGHTS", raising=False)
    assert default_weights_path() == ASSETS / PACKAGED_WEIGHTS
    assert (ASSETS / PACKAGED_WEIGHTS).stat().st_size <= 32 * 2**20  # fp16, fits the package budget


def test_weights_match_the_sha256_in_the_model_card() -> None:
    card = (ASSETS / "MODEL_CARD.md").read_text()
    found = re.search(r"sha256: `([0-9a-f]{64})`", card)
    assert found, "MODEL_CARD.md names no sha256"
    assert sha256_file(ASSETS / PACKAGED_WEIGHTS) == found.group(1)


def test_weights_beat_the_mean_on_a_fresh_sample(demo_model, tmp_path) -> None:
    make_dataset(n=256, seed=FRESH_SEED, out=tmp_path, progress=False)
    data = load_split([tmp_path])
    with torch.inference_mode():
        pred = demo_model(torch.from_numpy(data.images), torch.from_numpy(data.magnitudes)).squeeze(1).numpy()
    assert np.isfinite(pred).all()
    model = compute_metrics(data.redshift, pred)
    # The sample's own mean is the best constant (in MSE), so this baseline favours the mean.
    mean = compute_metrics(data.redshift, np.full(data.n, data.redshift.mean(), dtype=np.float32))
    assert model["mae"] < 0.6 * mean["mae"], (model, mean)
    assert model["precision"] < 0.6 * mean["precision"], (model, mean)
    assert model["r2"] is not None and model["r2"] > 0.5, model
