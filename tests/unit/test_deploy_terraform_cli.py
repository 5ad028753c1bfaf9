"""The terraform wrapper: per-target data dir, mirror config only when a mirror exists."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from deploy.errors import TerraformError  # noqa: E402
from deploy.terraform_cli import TerraformWorkspace, write_mirror_config  # noqa: E402


def _workspace(tmp_path: Path, mirror: Path | None, binary: str = "terraform") -> TerraformWorkspace:
    return TerraformWorkspace(
        module_dir=tmp_path / "tf", state_dir=tmp_path / "state/terraform/local", plugin_mirror=mirror, binary=binary
    )


def test_mirror_config_installs_aws_only_from_the_mirror(tmp_path: Path) -> None:
    cfg = tmp_path / "cli.tfrc"
    write_mirror_config(cfg, tmp_path)
    text = cfg.read_text()
    assert f'path    = "{tmp_path.resolve()}"' in text
    assert 'include = ["registry.terraform.io/hashicorp/aws"]' in text
    assert 'exclude = ["registry.terraform.io/hashicorp/aws"]' in text


def test_mirror_config_is_not_rewritten_when_unchanged(tmp_path: Path) -> None:
    cfg = tmp_path / "cli.tfrc"
    write_mirror_config(cfg, tmp_path)
    before = cfg.stat().st_mtime_ns
    write_mirror_config(cfg, tmp_path)
    assert cfg.stat().st_mtime_ns == before


def test_environment_uses_the_mirror_when_it_exists(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    ws = _workspace(tmp_path, mirror)
    env = ws.environment()
    assert env["TF_CLI_CONFIG_FILE"] == str(ws.cli_config) and ws.cli_config.is_file()
    assert env["TF_DATA_DIR"] == str(tmp_path / "state/terraform/local/.terraform")


def test_environment_falls_back_to_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(tmp_path / "dangling.tfrc"))
    env = _workspace(tmp_path, tmp_path / "absent-mirror").environment()
    assert "TF_CLI_CONFIG_FILE" not in env


def test_missing_terraform_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(TerraformError, match="not found on PATH: install Terraform"):
        _workspace(tmp_path, None, binary="no-such-terraform-binary").run("version")


def test_no_state_means_no_outputs(tmp_path: Path) -> None:
    assert _workspace(tmp_path, None).outputs() == {}
