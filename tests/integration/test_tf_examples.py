"""Every configuration under terraform/examples/ initialises and validates offline (provider
mirror when there is one), as a user would run it: `terraform init -backend=false` and
`terraform validate` in the example's folder."""

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
EXAMPLES = sorted(p for p in (ROOT / "terraform/examples").iterdir() if p.is_dir())

# The examples call the root module, which is also `make deploy`'s root configuration and so
# declares `backend "local" {}`; Terraform ignores a backend in a called module and says so.
EXPECTED_WARNINGS = {"Backend configuration ignored"}


def test_the_examples_are_there() -> None:
    assert {"complete", "local"} <= {p.name for p in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_inits_and_validates_offline(example: Path, tmp_path: Path) -> None:
    env = {**os.environ, "TF_DATA_DIR": str(tmp_path / ".terraform"), "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}
    env.pop("TF_CLI_CONFIG_FILE", None)
    if plugin_mirror():
        write_mirror_config(tmp_path / "cli.tfrc", Path(plugin_mirror()))
        env["TF_CLI_CONFIG_FILE"] = str(tmp_path / "cli.tfrc")

    def terraform(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["terraform", f"-chdir={example}", *args, "-no-color"], env=env, text=True, capture_output=True, timeout=600
        )

    init = terraform("init", "-input=false", "-backend=false")
    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    proc = terraform("validate", "-json")
    result = json.loads(proc.stdout)
    assert result["valid"] and result["error_count"] == 0, proc.stdout
    warnings = {d["summary"] for d in result["diagnostics"] if d["severity"] == "warning"}
    assert warnings <= EXPECTED_WARNINGS, proc.stdout
