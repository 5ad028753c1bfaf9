"""Compiled OpenVINO blobs next to the IR: written per CPU class, imported instead of compiled by a
worker of that class (the IR parts then never read), ignored for another class, and the same numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cosmicai import engine_openvino as EO
from cosmicai.engine import Engine
from cosmicai.qualify import CPU_FEATURES_ENV, packaged_validation, prepare_engine_files, read_validation

DEMO = Path(__file__).resolve().parents[2] / "handlers" / "cosmicai" / "assets" / "astromae-demo.safetensors"


@pytest.fixture(scope="module")
def ir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo weights with their IR and the compiled blobs of fp32 and int8 at one thread."""
    folder = tmp_path_factory.mktemp("ovblobs")
    weights = folder / "astromae.safetensors"
    shutil.copyfile(DEMO, weights)
    prepare_engine_files(weights, openvino=True, qualify=False)
    assert EO.main(["export-compiled", str(weights), "--precisions", "fp32,int8"]) == 0
    return weights


def test_blobs_are_written_per_cpu_class_with_an_index(ir: Path) -> None:
    index = json.loads((EO.ir_dir(ir) / EO.COMPILED_DIR / EO.COMPILED_INDEX).read_text())
    assert index["format"] == EO.COMPILED_FORMAT and index["openvino"] == EO.openvino_version()
    rows = {(b["part"], b["threads"], b["inference_precision"]) for b in index["blobs"]}
    assert rows == {("embed", 1, "f32"), ("blocks", 1, "f32"), ("blocks_int8", 1, "f32"), ("rest", 1, "f32")}
    assert {b["cpu_class"] for b in index["blobs"]} == {EO.cpu_class()}
    for b in index["blobs"]:
        assert (EO.ir_dir(ir) / EO.COMPILED_DIR / b["file"]).stat().st_size == b["bytes"] > 0


def test_a_worker_of_the_class_imports_them_and_reads_no_ir(ir: Path) -> None:
    images, mags = read_validation(packaged_validation(), 32)
    blobbed = EO.load(EO.ir_dir(ir), ir)
    got = Engine(blobbed, precision="int8", threads=1, backend="openvino").predict(images, mags)
    assert set(blobbed.made.values()) == {"imported"}
    assert isinstance(blobbed.parts, EO.LazyParts) and blobbed.parts.read == ()
    plain = EO.load(EO.ir_dir(ir), ir)
    plain.blobs = []  # as without compiled/: compiled from the IR
    want = Engine(plain, precision="int8", threads=1, backend="openvino").predict(images, mags)
    assert set(plain.made.values()) == {"compiled"}
    assert float(np.abs(got - want).max()) <= 1e-6


def test_another_cpu_class_or_thread_count_compiles_from_the_ir(ir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images, mags = read_validation(packaged_validation(), 4)
    monkeypatch.setenv(CPU_FEATURES_ENV, "avx2,fma")
    m = EO.load(EO.ir_dir(ir), ir)
    Engine(m, precision="fp32", threads=1, backend="openvino").predict(images, mags)
    assert set(m.made.values()) == {"compiled"}
    monkeypatch.delenv(CPU_FEATURES_ENV)
    m2 = EO.load(EO.ir_dir(ir), ir)
    Engine(m2, precision="fp32", threads=2, backend="openvino").predict(images, mags)
    assert set(m2.made.values()) == {"compiled"}


def test_an_index_of_another_ir_is_ignored(ir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "astromae.openvino"
    shutil.copytree(EO.ir_dir(ir), folder)
    index_path = folder / EO.COMPILED_DIR / EO.COMPILED_INDEX
    index = json.loads(index_path.read_text())
    index["ir_created"] = "1999-01-01T00:00:00Z"
    index_path.write_text(json.dumps(index))
    assert EO.load(folder).blobs == []


def test_parts_left_out_compile_at_init_and_blobs_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "astromae.safetensors"
    shutil.copyfile(DEMO, weights)
    prepare_engine_files(weights, openvino=True, qualify=False)
    index = EO.export_compiled(EO.ir_dir(weights), weights, precisions=("int8",), parts=("embed", "blocks_int8"))
    assert {b["part"] for b in index["blobs"]} == {"embed", "blocks_int8"}
    m = EO.load(EO.ir_dir(weights), weights)
    images, mags = read_validation(packaged_validation(), 4)
    Engine(m, precision="int8", threads=1, backend="openvino").predict(images, mags)
    assert {k[0]: v for k, v in m.made.items()} == {"embed": "imported", "blocks_int8": "imported", "rest": "compiled"}
    assert m.parts.read == ("rest",)

    def corrupt(compiled: object, blob: bytes, config: dict, what: str, tol: float = 1e-6) -> None:
        raise EO.BlobMismatchError(f"the compiled blob of {what} differs")

    monkeypatch.setattr(EO, "_check_blob", corrupt)
    with pytest.raises(EO.BlobMismatchError):
        EO.export_compiled(EO.ir_dir(weights), weights, threads=(2,), precisions=("fp32",), parts=("embed",))
