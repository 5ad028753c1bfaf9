"""The Terraform settings the deploy tooling reads before Terraform runs (architecture, reservations)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from deploy import tfvars  # noqa: E402
from deploy.images import images_command, push_command  # noqa: E402


def test_defaults_come_from_variables_tf() -> None:
    values = tfvars.settings(ROOT, None)
    assert values["architecture"] == "x86_64"
    assert values["infer_reserved_concurrency"] == -1
    assert values["state_machine_log_level"] == "ERROR"
    assert "inference_image_tag" not in values  # required, no default


def test_tfvars_scalars_override_and_blocks_are_skipped(tmp_path: Path) -> None:
    var_file = tmp_path / "x.tfvars"
    var_file.write_text(
        '# a comment\narchitecture = "arm64"   # Graviton\ninfer_reserved_concurrency = 200\n'
        'tags = {\n  owner = "me"\n}\nxray_tracing = true\nname_prefix = "${var.x}"\n'
    )
    values = tfvars.settings(ROOT, var_file)
    assert (values["architecture"], values["infer_reserved_concurrency"], values["xray_tracing"]) == (
        "arm64",
        200,
        True,
    )
    assert "owner" not in values and values["name_prefix"] == "cosmicai"  # an expression is not guessed
    assert tfvars.architecture(values) == "arm64"


def test_an_unknown_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(tfvars.TfvarsError, match="x86_64.*arm64"):
        tfvars.architecture({"architecture": "amd64"})


def test_make_images_gets_the_target_and_architecture() -> None:
    cmd = images_command("make", Path("/repo"), "aws", "arm64")
    assert cmd == ["make", "-C", "/repo", "images", "TARGET=aws", "ARCHITECTURE=arm64"]
    urls = {
        "inference": "1.dkr.ecr.eu-west-1.amazonaws.com/x-inference",
        "orchestration": "1.dkr.ecr.eu-west-1.amazonaws.com/x-orchestration",
    }
    push = push_command("make", Path("/repo"), urls, "aws", "arm64")
    # The push rebuilds nothing only when it names the same target and platform as the build.
    assert push[:6] == cmd and "IMAGES_PUSH=1.dkr.ecr.eu-west-1.amazonaws.com" in push
