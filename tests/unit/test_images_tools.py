"""Image tooling without an engine: image specs, pins, runtime base choice, and prune.sh on a fake venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts/images"))

from build import runtime_image_for  # noqa: E402
from image_spec import IMAGES  # noqa: E402
from wheelhouse import Pin, normalise, requirements_text  # noqa: E402


def test_specs_budgets_and_contents():
    inf, orch = IMAGES["inference"], IMAGES["orchestration"]
    assert (inf.budget_mb, orch.budget_mb) == (1000.0, 250.0)
    assert "torch" in inf.roots and "torch" not in orch.roots
    # Summarize reads parquet catalogs; nothing in a Lambda image draws progress bars.
    assert "pyarrow" in orch.roots and "rich" not in inf.roots + orch.roots
    assert inf.bake_weights and not orch.bake_weights
    assert (inf.repository, orch.repository) == ("cosmicai-inference", "cosmicai-orchestration")


def test_requirements_keep_the_cpu_local_version():
    # torch==2.13.0+cpu matches only the CPU build: an index build cannot take PyPI's CUDA torch.
    pins = [Pin("torch", "2.13.0+cpu", "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"), Pin("numpy", "2.4.6", "x.whl")]
    assert requirements_text(pins) == "torch==2.13.0+cpu\nnumpy==2.4.6\n"
    assert normalise("Typing_Extensions") == "typing-extensions"


@pytest.mark.parametrize(
    ("base", "runtime", "expected"),
    [
        ("cosmicai-base:bookworm", None, "cosmicai-base:bookworm-runtime"),
        ("python:3.11-slim", None, "python:3.11-slim"),
        ("cosmicai-base:bookworm", "python:3.11-slim", "python:3.11-slim"),
    ],
)
def test_runtime_image_choice(base, runtime, expected):
    assert runtime_image_for(base, runtime) == expected


def test_prune_keeps_what_runs_and_drops_the_rest(tmp_path):
    sp = tmp_path / "venv/lib/python3.11/site-packages"
    files = [
        "botocore/data/endpoints.json", "botocore/data/s3/2006-03-01/service-2.json.gz",
        "botocore/data/sts/2011-06-15/service-2.json.gz", "botocore/data/ec2/2016-11-15/service-2.json.gz",
        "pyarrow/libarrow_python.so.2600.1.0", "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2600",
        "pyarrow/libarrow_substrait.so.2600", "pyarrow/_substrait.cpython-311-x86_64-linux-gnu.so",
        "pyarrow/libarrow_flight.so.2600", "pyarrow/include/arrow/api.h", "pyarrow/tests/test_x.py",
        "torch/bin/torch_shm_manager", "torch/bin/test_api", "torch/include/c10.h", "numpy/_core/tests/t.py",
    ]
    for rel in files:
        (sp / rel).parent.mkdir(parents=True, exist_ok=True)
        (sp / rel).write_text(rel)
    subprocess.run(["sh", str(ROOT / "images/prune.sh"), str(tmp_path / "venv")], check=True)
    left = {str(p.relative_to(sp)) for p in sp.rglob("*") if p.is_file() or p.is_symlink()}
    assert left == {
        "botocore/data/endpoints.json", "botocore/data/s3/2006-03-01/service-2.json.gz",
        "botocore/data/sts/2011-06-15/service-2.json.gz", "pyarrow/libarrow_python.so.2600.1.0",
        "pyarrow/libarrow_python.so", "pyarrow/libarrow_python.so.2600",
        # lib.so links it: only the Python binding goes
        "pyarrow/libarrow_substrait.so.2600", "torch/bin/torch_shm_manager",
    }
    for link in ("libarrow_python.so", "libarrow_python.so.2600"):
        assert (sp / "pyarrow" / link).is_symlink() and (sp / "pyarrow" / link).read_text().endswith("2600.1.0")


def test_push_skips_a_tag_ecr_already_holds(monkeypatch):
    import boto3
    from botocore.stub import Stubber

    import build

    ecr = boto3.client("ecr", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(ecr)
    expected = {"repositoryName": "cosmicai-inference", "imageIds": [{"imageTag": "abc"}]}
    stub.add_client_error("describe_images", "ImageNotFoundException", expected_params=expected)
    stub.add_response("describe_images", {"imageDetails": [{"imageTags": ["abc"]}]}, expected_params=expected)
    stub.activate()
    monkeypatch.setattr(boto3, "client", lambda *a, **k: ecr)
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert build.ecr_has_tag(registry, f"{registry}/cosmicai-inference", "abc") is False
    assert build.ecr_has_tag(registry, f"{registry}/cosmicai-inference", "abc") is True
