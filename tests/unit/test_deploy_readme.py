"""docs/deploy.md lists every variable and output of the root Terraform module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _deploy_section() -> str:
    return (ROOT / "docs" / "deploy.md").read_text()


@pytest.mark.parametrize(("tf_file", "kind"), [("variables.tf", "variable"), ("outputs.tf", "output")])
def test_readme_names_every_root_variable_and_output(tf_file: str, kind: str) -> None:
    names = re.findall(rf'^{kind} "(\w+)"', (ROOT / "terraform" / tf_file).read_text(), re.M)
    assert len(names) > 10
    section = _deploy_section()
    missing = [n for n in names if f"`{n}`" not in section]
    assert not missing, f"docs/deploy.md lacks {kind}s {missing} of terraform/{tf_file}"


def test_readme_memory_default_matches_the_variable() -> None:
    body = (ROOT / "terraform/variables.tf").read_text().split('variable "infer_memory_mb"', 1)[1]
    default = re.search(r"^\s*default\s*=\s*(\d+)", body, re.M).group(1)
    # The generated Inputs table (scripts/docs/tf_tables.py): name | description | type | default | required.
    assert re.search(rf"^\| `infer_memory_mb` \| [^|]+ \| `number` \| `{default}` \| no \|$", _deploy_section(), re.M)
