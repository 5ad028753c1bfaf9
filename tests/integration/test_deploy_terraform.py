"""`make tf-check` and `make scan` as tests: fmt, validate, `terraform test` (mock
provider), and checkov with zero failed checks. Offline when the provider mirror exists."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from itfixtures.stack import ROOT, plugin_mirror

sys.path.insert(0, str(ROOT / "scripts"))

from deploy.terraform_cli import write_mirror_config  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform CLI not on PATH"),
]
TF_DIR = ROOT / "terraform"


@pytest.fixture(scope="module")
def tf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for terraform: a private data dir, the mirror config when there is one."""
    work = tmp_path_factory.mktemp("tf-check")
    env = {**os.environ, "TF_DATA_DIR": str(work / ".terraform"), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    env.pop("TF_CLI_CONFIG_FILE", None)
    if plugin_mirror():
        write_mirror_config(work / "cli.tfrc", Path(plugin_mirror()))
        env["TF_CLI_CONFIG_FILE"] = str(work / "cli.tfrc")
    return env


def _terraform(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["terraform", f"-chdir={TF_DIR}", *args, "-no-color"], env=env, text=True, capture_output=True, timeout=600
    )


@pytest.fixture(scope="module")
def initialised(tf_env: dict[str, str]) -> dict[str, str]:
    proc = _terraform(tf_env, "init", "-input=false", "-backend=false")
    assert proc.returncode == 0, proc.stderr
    return tf_env


def test_terraform_is_formatted(tf_env: dict[str, str]) -> None:
    proc = _terraform(tf_env, "fmt", "-check", "-recursive", "-diff")
    assert proc.returncode == 0, f"run `terraform -chdir=terraform fmt -recursive`:\n{proc.stdout}"


def test_terraform_validates(initialised: dict[str, str]) -> None:
    proc = _terraform(initialised, "validate", "-json")
    result = json.loads(proc.stdout)
    assert result["valid"] and result["error_count"] == 0, proc.stdout


def test_terraform_tests_pass_with_the_mock_provider(initialised: dict[str, str]) -> None:
    proc = _terraform(initialised, "test")
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    runs = [line for line in proc.stdout.splitlines() if line.strip().startswith("run ")]
    assert len(runs) >= 9 and all(line.endswith("... pass") for line in runs), runs


def test_checkov_finds_no_failed_checks() -> None:
    """`make scan` (installs checkov into .venv-tools on first use)."""
    proc = subprocess.run(
        ["make", "-s", ".venv-tools/.installed"], cwd=ROOT, text=True, capture_output=True, timeout=600
    )
    assert proc.returncode == 0, f"installing checkov failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    proc = subprocess.run(
        [
            str(ROOT / ".venv-tools/bin/checkov"),
            "-d",
            "terraform",
            "--framework",
            "terraform",
            "--skip-path",
            "terraform/tests",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=600,
    )
    report = json.loads(proc.stdout)
    summary = (report[0] if isinstance(report, list) else report)["summary"]
    print(summary)
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0, proc.stdout[-4000:]
    assert summary["passed"] > 40 and summary["resource_count"] > 20
