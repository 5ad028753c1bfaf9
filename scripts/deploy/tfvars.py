"""The few Terraform settings the deploy tooling needs before Terraform runs.

`make images` must know `architecture` (the docker --platform) and preflight must know the
reserved concurrencies and retention before any plan exists. They are read from the
defaults in terraform/variables.tf and the scalar assignments of the tfvars file; a value
this reader cannot parse (an expression, a map) is reported, not guessed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import DeployError

_VARIABLE_RE = re.compile(r'^variable\s+"(\w+)"\s*\{', re.M)
_DEFAULT_RE = re.compile(r"^\s*default\s*=\s*(.+?)\s*$", re.M)
_ASSIGN_RE = re.compile(r"^\s*(\w+)\s*=\s*(.+?)\s*$")


class TfvarsError(DeployError):
    """A tfvars value the deploy tooling needs could not be read."""


# A tfvars or variables.tf scalar as Python.
Scalar = str | int | float | bool
# Variable name -> its effective scalar value.
Settings = dict[str, Scalar]


def _scalar(text: str) -> Scalar | None:
    """An HCL literal (string, number, bool) as Python; None for anything else."""
    text = text.strip()
    if text.startswith('"'):
        end = text.find('"', 1)
        return text[1:end] if end > 0 and "${" not in text[1:end] else None
    text = text.split("#", 1)[0].split("//", 1)[0].strip()  # a trailing comment
    if text in ("true", "false"):
        return text == "true"
    return json.loads(text) if re.fullmatch(r"-?\d+(\.\d+)?", text) else None


def variable_defaults(variables_tf: Path) -> Settings:
    """Scalar defaults of the variables declared in `variables_tf`."""
    text = variables_tf.read_text()
    out: Settings = {}
    starts = [(m.group(1), m.end()) for m in _VARIABLE_RE.finditer(text)]
    for i, (name, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
        m = _DEFAULT_RE.search(text[start:end])
        if m:
            value = _scalar(m.group(1))
            if value is not None:
                out[name] = value
    return out


def read_tfvars(path: Path) -> Settings:
    """Top-level scalar assignments of a tfvars file (comments and blocks skipped)."""
    out: Settings = {}
    depth = 0
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "//")):
            continue
        if depth == 0:
            m = _ASSIGN_RE.match(line)
            if m:
                value = _scalar(m.group(2))
                if value is not None:
                    out[m.group(1)] = value
        depth += stripped.count("{") + stripped.count("[") - stripped.count("}") - stripped.count("]")
    return out


def settings(root: Path, var_file: Path | None) -> Settings:
    """Effective scalar settings: variables.tf defaults overridden by the tfvars file."""
    values = variable_defaults(root / "terraform" / "variables.tf")
    if var_file is not None and var_file.is_file():
        values.update(read_tfvars(var_file))
    return values


def architecture(values: Settings) -> str:
    """The functions' instruction set (`architecture`), checked like variables.tf does."""
    arch = values.get("architecture", "x86_64")
    if arch not in ("x86_64", "arm64"):
        raise TfvarsError(f'architecture = {arch!r} in the tfvars: it must be "x86_64" or "arm64"')
    return str(arch)
