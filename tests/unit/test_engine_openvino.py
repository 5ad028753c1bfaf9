"""The OpenVINO backend: IR parts by named submodule, per-part precision, the IR bound to its
weights, the same Engine API, the payload field, and a worker INIT that never imports torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmicai import engine_openvino as EO
from cosmicai.engine import Engine, EngineError, plain_eager_predict
from cosmicai.openvino_convert import BlocksPart, EmbedPart, RestPart
from cosmicai.qualify import packaged_validation, prepare_engine_files, read_validation
from cosmicai.weights import load_model

DEMO = Path(__file__).resolve().parents[2] / "handlers" / "cosmicai" / "assets" / "astromae-demo.safetensors"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Demo weights copied to a folder with their IR (int8 part included) written next to them."""
    folder = tmp_path_factory.mktemp("ovdemo")
    weights = folder / "astromae.safetensors"
    shutil.copyfile(DEMO, weights)
    summary = prepare_engine_files(weights, openvino=True, qualify=False)
    model = load_model(weights)
    images, mags = read_validation(packaged_validation(), 64)
    return {
        "weights": weights,
        "summary": summary,
        "model": model,
        "images": images,
        "mags": mags,
        "eager": plain_eager_predict(model, images, mags),
    }


def test_parts_reach_the_model_by_name_and_compose_to_its_forward() -> None:
    from cosmicai.model import AstroMAE

    torch.manual_seed(0)
    model = AstroMAE().eval()
    images, mags = read_validation(packaged_validation(), 8)
    x, m = torch.from_numpy(images), torch.from_numpy(mags)
    with torch.inference_mode():
        tokens = BlocksPart(model.blocks)(EmbedPart(model)(x))
        z = RestPart(model)(tokens, x, m)
        want = model(x, m)
    assert tokens.shape == (8, 17, 192)
    assert torch.allclose(z, want, atol=1e-6)


def test_ir_is_written_next_to_the_weights_with_a_manifest(demo: dict) -> None:
    folder = EO.ir_dir(demo["weights"])
    assert folder == demo["weights"].with_name("astromae.openvino")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["parts"]) == {"embed", "blocks", "rest", "blocks_int8"}
    assert manifest["weights"]["bytes"] == demo["weights"].stat().st_size
    # The demo weights are fp16: the parts that compute identically from f16 storage are stored so.
    assert manifest["stored"] == {
        "embed": "f16 (lossless)",
        "blocks": "f16 (lossless)",
        "rest": "f32",
        "blocks_int8": "int8 weights",
    }


@pytest.mark.parametrize(("precision", "tol"), [("fp32", 1e-5), ("bf16", 2e-3), ("int8", 2e-3)])
def test_openvino_precisions_agree_with_eager(demo: dict, precision: str, tol: float) -> None:
    ir = EO.load(EO.ir_dir(demo["weights"]), demo["weights"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bf16 on a CPU without it: compiled f32, warned
        engine = Engine(ir, precision=precision, threads=1, batch_size=24, micro_batch=16, backend="openvino")
    got = engine.predict(demo["images"], demo["mags"])
    assert got.dtype == np.float32 and got.shape == (64,)
    assert np.abs(got - demo["eager"]).max() <= tol
    t = engine.last_timings
    assert [b.n for b in t.batches] == [24, 24, 16] and t.objects_per_s > 0 and t.peak_rss_mb > 0
    assert engine.describe()["backend"] == "openvino" and engine.precision == precision


def test_only_the_blocks_change_precision(demo: dict) -> None:
    ir = EO.load(EO.ir_dir(demo["weights"]))
    runner = EO.OpenVINORunner(ir, "bf16", 1, 16)
    for req in (runner._embed, runner._rest):
        assert str(req.get_compiled_model().get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")


def test_ir_of_other_weights_is_refused(demo: dict, tmp_path: Path) -> None:
    other = tmp_path / "astromae.safetensors"
    data = bytearray(demo["weights"].read_bytes())
    data[-3] ^= 0xFF  # same size and header, other numbers
    other.write_bytes(bytes(data))
    shutil.copytree(EO.ir_dir(demo["weights"]), EO.ir_dir(other))
    with pytest.raises(EO.OpenVINOIRError, match="other weights"):
        EO.load_for_weights(other)


def test_engine_checks_like_the_torch_one(demo: dict) -> None:
    ir = EO.load(EO.ir_dir(demo["weights"]))
    engine = Engine(ir, threads=1, backend="openvino")
    with pytest.raises(EngineError, match="images must have shape"):
        engine.predict(np.zeros((2, 5, 16, 16), np.float32), np.zeros((2, 5), np.float32))
    with pytest.raises(EngineError, match="backend 'tensorrt' unknown"):
        Engine(ir, backend="tensorrt")
    no_int8 = EO.OpenVINOModel({k: v for k, v in ir.parts.items() if k != EO.INT8_PART})
    with pytest.raises(EngineError, match="precision int8 is not available"):
        Engine(no_int8, precision="int8", threads=1, backend="openvino")
    with pytest.raises(EngineError, match="needs an AstroMAE"):
        Engine(ir, backend="torch")


def test_payload_backend_and_fast_reach_the_work_item() -> None:
    from cosmicai.payload import RunPayload
    from cosmicai.plan import ShardInfo, plan_work_items
    from cosmicai.worker import WorkItem

    payload = RunPayload.parse(
        {
            "input": "s3://data-bucket/in/",
            "output": "s3://out-bucket/r/",
            "run_id": "r1",
            "backend": "openvino",
            "precision": "fast",
        }
    )
    items = plan_work_items(payload, [ShardInfo("in/part-0.safetensors", "part-0", 100, 2)])
    assert items[0].wire()["backend"] == "openvino" and items[0].wire()["precision"] == "fast"
    item = WorkItem.parse(items[0].wire())
    assert (item.backend, item.precision) == ("openvino", "fast")
    default = RunPayload.parse({"input": "s3://data-bucket/in/", "output": "s3://out-bucket/r/", "run_id": "r2"})
    assert (default.backend, default.precision) == (None, "fp32")  # None: the inference function's own backend
    unset = plan_work_items(default, [ShardInfo("in/part-0.safetensors", "part-0", 100, 2)])[0].wire()
    assert "backend" not in unset and WorkItem.parse(unset).backend is None


def test_openvino_worker_init_never_imports_torch(demo: dict) -> None:
    code = (
        "import sys, numpy as np\n"
        "import cosmicai.handlers.infer as infer\n"
        "assert 'torch' not in sys.modules, 'INIT imported torch'\n"
        "engine = infer._engine('int8', 8)\n"
        "z = engine.predict(np.zeros((3, 5, 32, 32), np.float32), np.full((3, 5), 18.0, np.float32))\n"
        "assert z.shape == (3,) and 'torch' not in sys.modules, 'the engine imported torch'\n"
        "print(engine.describe()['backend'], engine.precision)\n"
    )
    env = dict(os.environ, COSMICAI_WEIGHTS=str(demo["weights"]), COSMICAI_BACKEND="openvino", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["openvino", "int8"]


def test_fast_on_a_cpu_class_not_recorded_rechecks_at_start_up(demo: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from cosmicai import procstats, qualify

    recorded = {
        "features": ["amx_bf16", "avx2", "avx512_bf16", "avx512f", "avx512_vnni"],
        "objects": 256,
        "modes": [
            {"backend": "openvino", "precision": "fp32", "max_abs_dz_vs_fp32": 0.0, "objects_per_s": 500.0},
            {"backend": "openvino", "precision": "bf16", "max_abs_dz_vs_fp32": 3e-4, "objects_per_s": 1200.0},
        ],
    }
    qualify.write_qualification(demo["weights"], recorded, qualify.validation_path(demo["weights"]))
    # A CPU with AVX2 and VNNI but no bf16 (a class the file has not seen): only int8 is worth trying.
    monkeypatch.setattr(procstats, "cpu_info", lambda: ("AVX2 VNNI CPU", frozenset({"avx2", "fma", "avx_vnni"})))
    engine = Engine.from_weights(demo["weights"], backend="openvino", precision="fast", threads=1)
    assert engine.fast.source == "rechecked"
    assert {m["precision"] for m in engine.fast.modes} == {"fp32", "int8"}
    assert engine.precision in ("fp32", "int8") and "re-checked on this CPU class" in engine.fast.reason
    z = engine.predict(demo["images"], demo["mags"])
    assert np.abs(z - demo["eager"]).max() <= 2e-3


def test_predict_cli_runs_the_openvino_backend(demo: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cosmicai.catalog import read_catalog
    from cosmicai.cli import main

    out = tmp_path / "cat.parquet"
    rc = main(
        [
            "predict",
            "--weights",
            str(demo["weights"]),
            "--input",
            str(packaged_validation()),
            "--output",
            str(out),
            "--backend",
            "openvino",
            "--precision",
            "int8",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    text = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal's width
    assert "backend openvino, precision int8" in text
    assert read_catalog(out).num_rows == 256


def test_convert_checkpoint_without_dst_needs_an_engine_flag(demo: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from cosmicai.cli import main

    assert main(["convert-checkpoint", str(demo["weights"])]) == 2
    assert "--openvino / --qualify" in capsys.readouterr().err
