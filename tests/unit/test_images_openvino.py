"""The inference image's OpenVINO: pruned to what a CPU worker and the build's conversion use,
the package list carries it, and the build stages the validation set the qualification needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "images"))

from image_spec import IMAGES  # noqa: E402


def test_inference_image_carries_openvino_and_orchestration_does_not() -> None:
    assert "openvino" in IMAGES["inference"].roots
    assert "openvino" not in IMAGES["orchestration"].roots


def test_prune_keeps_the_cpu_plugin_and_the_ir_and_pytorch_frontends(tmp_path: Path) -> None:
    ov = tmp_path / "venv/lib/python3.11/site-packages/openvino"
    keep = [
        "libs/libopenvino.so.2641",
        "libs/libopenvino_intel_cpu_plugin.so",
        "libs/libtbb.so.12",
        "libs/libopenvino_ir_frontend.so.2641",
        "libs/libopenvino_pytorch_frontend.so.2641",
        "frontend/pytorch/ts_decoder.py",
        "frontend/frontend.py",
        "tools/ovc/convert.py",
        "__init__.py",
    ]
    drop = [
        "libs/libopenvino_intel_gpu_plugin.so",
        "libs/libopenvino_intel_npu_plugin.so",
        "libs/cache.json",
        "libs/libopenvino_auto_plugin.so",
        "libs/libopenvino_auto_batch_plugin.so",
        "libs/libopenvino_hetero_plugin.so",
        "libs/libopenvino_c.so.2641",
        "libs/tbb.pc",
        "libs/libopenvino_onnx_frontend.so.2641",
        "libs/libopenvino_tensorflow_frontend.so.2641",
        "libs/libopenvino_tensorflow_lite_frontend.so.2641",
        "libs/libopenvino_paddle_frontend.so.2641",
        "libs/libopenvino_jax_frontend.so.2641",
        "libs/libopenvino_gguf_frontend.so.2641",
        "frontend/onnx/__init__.py",
        "frontend/tensorflow/utils.py",
        "frontend/paddle/__init__.py",
        "frontend/jax/__init__.py",
        "include/openvino/core.hpp",
    ]
    for rel in keep + drop:
        (ov / rel).parent.mkdir(parents=True, exist_ok=True)
        (ov / rel).write_text(rel)
    subprocess.run(["sh", str(ROOT / "images/prune.sh"), str(tmp_path / "venv")], check=True)
    left = {str(p.relative_to(ov)) for p in ov.rglob("*") if p.is_file()}
    assert left == set(keep)


def test_prune_keeps_the_arm_cpu_plugin_of_the_aarch64_wheel(tmp_path: Path) -> None:
    # openvino-2026.4.1-22982-cp311-cp311-manylinux_2_35_aarch64.whl's libs/ (its CPU plugin is
    # the ARM one, and it has no GPU or NPU plugin): an arm64 image keeps what a worker loads.
    libs = tmp_path / "venv/lib/python3.11/site-packages/openvino/libs"
    keep = [
        "libopenvino.so.2641",
        "libopenvino_arm_cpu_plugin.so",
        "libopenvino_ir_frontend.so.2641",
        "libopenvino_pytorch_frontend.so.2641",
        "libtbb.so.12",
        "libtbbbind_2_5.so.3",
        "libtbbmalloc.so.2",
        "libtbbmalloc_proxy.so.2",
        "libhwloc.so.15",
    ]
    drop = [
        "libopenvino_auto_plugin.so",
        "libopenvino_auto_batch_plugin.so",
        "libopenvino_hetero_plugin.so",
        "libopenvino_c.so.2641",
        "libopenvino_onnx_frontend.so.2641",
        "libopenvino_gguf_frontend.so.2641",
        "tbb.pc",
    ]
    libs.mkdir(parents=True)
    for name in keep + drop:
        (libs / name).write_text(name)
    subprocess.run(["sh", str(ROOT / "images/prune.sh"), str(tmp_path / "venv")], check=True)
    assert {p.name for p in libs.iterdir()} == set(keep)


def test_the_image_build_converts_and_qualifies_from_the_baked_weights() -> None:
    dockerfile = (ROOT / "images/inference.Dockerfile").read_text()
    assert "convert-checkpoint /opt/cosmicai/weights/astromae.safetensors" in dockerfile
    assert "--openvino --qualify --validation /ctx/weights/validation.safetensors" in dockerfile
    assert "COPY --from=builder /opt/cosmicai/weights /opt/cosmicai/weights" in dockerfile
    assert "'torch' not in sys.modules" in dockerfile  # the OpenVINO worker's import is checked
    from build_context import VALIDATION_SET

    assert VALIDATION_SET.is_file() and VALIDATION_SET.name == "validation-n256-s21.safetensors"
