"""Image tooling without an engine: image specs, pins, runtime base choice, and prune.sh on a fake venv."""

from __future__ import annotations

import json
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
    pins = [
        Pin("torch", "2.13.0+cpu", "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"),
        Pin("numpy", "2.4.6", "x.whl"),
    ]
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
        "botocore/data/endpoints.json",
        "botocore/data/s3/2006-03-01/service-2.json.gz",
        "botocore/data/sts/2011-06-15/service-2.json.gz",
        "botocore/data/ec2/2016-11-15/service-2.json.gz",
        "pyarrow/libarrow_python.so.2600.1.0",
        "pyarrow/libarrow_python.so",
        "pyarrow/libarrow_python.so.2600",
        "pyarrow/libarrow_substrait.so.2600",
        "pyarrow/_substrait.cpython-311-x86_64-linux-gnu.so",
        "pyarrow/libarrow_flight.so.2600",
        "pyarrow/include/arrow/api.h",
        "pyarrow/tests/test_x.py",
        "torch/bin/torch_shm_manager",
        "torch/bin/test_api",
        "torch/include/c10.h",
        "numpy/_core/tests/t.py",
    ]
    for rel in files:
        (sp / rel).parent.mkdir(parents=True, exist_ok=True)
        (sp / rel).write_text(rel)
    subprocess.run(["sh", str(ROOT / "images/prune.sh"), str(tmp_path / "venv")], check=True)
    left = {str(p.relative_to(sp)) for p in sp.rglob("*") if p.is_file() or p.is_symlink()}
    assert left == {
        "botocore/data/endpoints.json",
        "botocore/data/s3/2006-03-01/service-2.json.gz",
        "botocore/data/sts/2011-06-15/service-2.json.gz",
        "pyarrow/libarrow_python.so.2600.1.0",
        "pyarrow/libarrow_python.so",
        "pyarrow/libarrow_python.so.2600",
        # lib.so links it: only the Python binding goes
        "pyarrow/libarrow_substrait.so.2600",
        "torch/bin/torch_shm_manager",
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


# ---- platform, CPU torch, base images, budgets (issue 14, laptop image path) ----------

import build  # noqa: E402
import wheelhouse  # noqa: E402
from image_spec import OWN_RUNTIME_BASE_MB  # noqa: E402


def _platforms(args):
    return [args[i + 1] for i, a in enumerate(args) if a == "--platform"]


def test_wheels_are_chosen_for_the_functions_architecture_not_the_host():
    x86, arm = _platforms(wheelhouse.pip_target("x86_64")), _platforms(wheelhouse.pip_target("arm64"))
    assert "manylinux_2_28_x86_64" in x86 and not any("aarch64" in p for p in x86)
    assert "manylinux_2_28_aarch64" in arm and "manylinux2014_aarch64" in arm and not any("x86_64" in p for p in arm)
    with pytest.raises(wheelhouse.WheelhouseError, match="sparc"):
        wheelhouse.pip_target("sparc")


def test_docker_platform_follows_the_architecture():
    assert build.platform_for("x86_64") == "linux/amd64" and build.platform_for("arm64") == "linux/arm64"
    with pytest.raises(build.BaseImageError):
        build.platform_for("amd64")


def test_torch_is_pinned_to_the_cpu_build(tmp_path):
    lock = tmp_path / "lock.txt"
    lock.write_text("numpy==2.4.6\ntorch==2.13.0\n")
    assert wheelhouse.torch_pin(lock) == "torch==2.13.0+cpu"
    lock.write_text("numpy==2.4.6\n")
    assert wheelhouse.torch_pin(lock) is None
    wheelhouse.check_cpu_torch([Pin("torch", "2.13.0+cpu", "t.whl")])
    with pytest.raises(wheelhouse.WheelhouseError, match="not the CPU build"):
        wheelhouse.check_cpu_torch([Pin("torch", "2.13.0", "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl")])


def test_resolve_adds_the_cpu_constraint_and_the_torch_index_only_when_it_answers(monkeypatch, tmp_path):
    calls = []

    class Proc:
        stdout = json.dumps(
            {
                "install": [
                    {
                        "metadata": {"name": "torch", "version": "2.13.0+cpu"},
                        "download_info": {"url": "file:///w/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl"},
                    }
                ]
            }
        )

    def fake_pip(*args):
        constraint = [args[i + 1] for i, a in enumerate(args) if a == "-c" and "torch-cpu" in args[i + 1]]
        calls.append((args, Path(constraint[0]).read_text() if constraint else None))
        return Proc()

    monkeypatch.setattr(wheelhouse, "_pip", fake_pip)
    for answers in (True, False):
        monkeypatch.setattr(wheelhouse, "index_reachable", lambda url, answers=answers: answers)
        pins = wheelhouse.resolve(("torch",), frozenset(), "x86_64")
        assert pins == [Pin("torch", "2.13.0+cpu", "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl")]
    (with_index, pin_file), (without_index, _) = calls
    assert pin_file == wheelhouse.torch_pin() + "\n"
    assert "--extra-index-url" in with_index and wheelhouse.TORCH_CPU_INDEX in with_index
    assert "--extra-index-url" not in without_index  # offline: no minutes of retries, the pin still decides


def test_an_unreachable_or_empty_index_is_not_used(tmp_path):
    assert wheelhouse.index_reachable("") is False
    assert wheelhouse.index_reachable(tmp_path.as_uri()) is True
    assert wheelhouse.index_reachable((tmp_path / "absent").as_uri()) is False


def test_base_pairs_must_share_their_python():
    build.check_base_pair("python:3.11-slim", "python:3.11-slim")
    build.check_base_pair("cosmicai-base:bookworm", "cosmicai-base:bookworm-runtime")
    with pytest.raises(build.BaseImageError, match="same family"):
        build.check_base_pair("python:3.11-slim", "cosmicai-base:bookworm-runtime")


def test_our_debootstrap_base_is_refused_for_a_foreign_platform():
    build.check_own_base_platform("cosmicai-base:bookworm", "linux/amd64", "linux/amd64")
    build.check_own_base_platform("python:3.11-slim", "linux/amd64", "linux/arm64")
    with pytest.raises(build.BaseImageError, match="BASE_IMAGE=python:3.11-slim"):
        build.check_own_base_platform("cosmicai-base:bookworm", "linux/amd64", "linux/arm64")


def test_budget_counts_what_we_add_over_the_base():
    orch = IMAGES["orchestration"]
    assert orch.budget_for("cosmicai-base:bookworm-runtime", 79.6) == 250.0
    # python:3.11-slim: about 45 MB more base, the same budget for our layers. The
    # orchestration image measured 239.2 MB = 79.6 MB base + 159.6 MB ours.
    slim = orch.budget_for("python:3.11-slim", OWN_RUNTIME_BASE_MB + 45)
    assert slim == 250.0 + 45 and 159.6 + OWN_RUNTIME_BASE_MB + 45 <= slim
    assert orch.added_budget_mb == 250.0 - OWN_RUNTIME_BASE_MB


class _Image:
    def __init__(self, arch):
        self.attrs = {"Architecture": arch, "Size": 1e8}


class _Images:
    def __init__(self, local):
        self.local, self.pulled = local, []

    def get(self, ref):
        from docker.errors import ImageNotFound

        if ref not in self.local:
            raise ImageNotFound(ref)
        return _Image(self.local[ref])

    def pull(self, ref, platform=None):
        self.pulled.append((ref, platform))
        self.local[ref] = platform.split("/")[1]
        return _Image(self.local[ref])


class _Client:
    def __init__(self, local):
        self.images = _Images(local)


def test_a_base_is_pulled_for_the_platform_before_the_digest_is_computed():
    client = _Client({"python:3.11-slim": "arm64"})  # an Apple-silicon laptop's own copy
    build.ensure_base(client, "python:3.11-slim", "linux/amd64", lambda m: None)
    assert client.images.pulled == [("python:3.11-slim", "linux/amd64")]
    build.ensure_base(client, "python:3.11-slim", "linux/amd64", lambda m: None)
    assert len(client.images.pulled) == 1  # present for the platform now: no second pull
    with pytest.raises(build.BaseImageError, match="make images-base"):
        build.ensure_base(_Client({}), "cosmicai-base:bookworm", "linux/amd64", lambda m: None)
