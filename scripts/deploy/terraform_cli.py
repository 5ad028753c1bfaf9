"""Runs the terraform CLI for one target: its own data dir, state file and CLI config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import TerraformError

PROVIDER_SOURCE = "registry.terraform.io/hashicorp/aws"


@dataclass(frozen=True)
class TerraformWorkspace:
    """Where one target's Terraform lives: module dir, state dir, optional provider mirror."""

    module_dir: Path
    state_dir: Path
    plugin_mirror: Path | None
    binary: str = "terraform"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "terraform.tfstate"

    @property
    def cli_config(self) -> Path:
        return self.state_dir.parent / "cli.tfrc"

    def environment(self) -> dict[str, str]:
        """Environment for terraform: per-target data dir, mirror config or registry."""
        env = dict(os.environ)
        env["TF_DATA_DIR"] = str(self.state_dir / ".terraform")
        env["TF_IN_AUTOMATION"] = "1"
        env["TF_INPUT"] = "0"
        if self.plugin_mirror is not None and self.plugin_mirror.is_dir():
            write_mirror_config(self.cli_config, self.plugin_mirror)
            env["TF_CLI_CONFIG_FILE"] = str(self.cli_config)
        else:
            # A dangling TF_CLI_CONFIG_FILE makes terraform warn on every call.
            env.pop("TF_CLI_CONFIG_FILE", None)
        return env

    def run(self, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
        """Run `terraform -chdir=<module> <args>`; raise TerraformError on failure when check."""
        if shutil.which(self.binary) is None:
            raise TerraformError(
                f"'{self.binary}' not found on PATH: install Terraform >= 1.6 (https://developer.hashicorp.com/terraform/install)"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, f"-chdir={self.module_dir}", *args]
        proc = subprocess.run(cmd, env=self.environment(), text=True, capture_output=capture)
        if check and proc.returncode != 0:
            detail = (proc.stderr or "").strip()[-2000:] if capture else "see the output above"
            raise TerraformError(
                f"terraform {' '.join(args[:1])} failed (exit {proc.returncode}) in {self.module_dir}: {detail}"
            )
        return proc

    def init(self) -> None:
        """Initialise providers and the local backend at this target's state file."""
        self.run(
            "init", "-input=false", "-no-color", "-reconfigure", f"-backend-config=path={self.state_file}", capture=True
        )

    def outputs(self) -> dict[str, object]:
        """All root outputs as plain values ({} when nothing is deployed)."""
        if not self.state_file.exists():
            return {}
        proc = self.run("output", "-json", "-no-color", capture=True)
        return {name: item["value"] for name, item in json.loads(proc.stdout or "{}").items()}


def write_mirror_config(path: Path, mirror: Path) -> None:
    """Write a CLI config that installs the AWS provider from a filesystem mirror only."""
    text = (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror.resolve()))}\n"
        f"    include = [{json.dumps(PROVIDER_SOURCE)}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{json.dumps(PROVIDER_SOURCE)}]\n"
        "  }\n"
        "}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
