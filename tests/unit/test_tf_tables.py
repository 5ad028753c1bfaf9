"""scripts/docs/tf_tables.py: reads the variable and output blocks we write, renders the
Inputs/Outputs tables, and reports a README whose tables lag behind its module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from docs import tf_tables  # noqa: E402

VARIABLES = r"""
# a comment with a brace { and a "quote"
variable "plain" {
  description = "A \"quoted\" word, a # that is no comment, $${literal} and <name_prefix>."
  type        = string
}

variable "with_default" {
  description = "Has a default." // trailing comment
  type        = number
  default     = 10

  validation {
    condition     = var.with_default >= 1 && floor(var.with_default) == var.with_default
    error_message = "with_default must be a whole number >= 1 (not {})."
  }
}

/* a block
   comment */
variable "locations" {
  description = "Objects | with a pipe."
  type = list(object({
    bucket_arn = string
    prefix     = string
  }))
  default = [
    { bucket_arn = "arn:aws:s3:::b", prefix = "a  b/" },
  ]
}

variable "untyped" {
  description = <<-EOT
    not a plain string
  EOT
}
"""

OUTPUTS = """
output "arn" {
  description = "ARN of `the thing`."
  value       = { for k, v in aws_thing.this : k => v.arn }
}
"""


def _module(tmp_path: Path, variables: str = VARIABLES, outputs: str = OUTPUTS) -> Path:
    module = tmp_path / "mod"
    module.mkdir()
    (module / "variables.tf").write_text(variables)
    (module / "outputs.tf").write_text(outputs)
    return module


def test_reads_descriptions_types_and_defaults(tmp_path: Path) -> None:
    module = _module(tmp_path, VARIABLES.split('variable "untyped"')[0])
    variables = {v.name: v for v in tf_tables.read_variables(module)}
    assert list(variables) == ["plain", "with_default", "locations"]
    plain = variables["plain"]
    assert plain.description == 'A "quoted" word, a # that is no comment, ${literal} and <name_prefix>.'
    assert (plain.type, plain.default, plain.required) == ("string", None, True)
    assert (variables["with_default"].type, variables["with_default"].default) == ("number", "10")
    assert variables["locations"].type == "list(object({ bucket_arn = string, prefix = string }))"
    assert variables["locations"].default == '[ { bucket_arn = "arn:aws:s3:::b", prefix = "a  b/" }, ]'
    assert [(o.name, o.description) for o in tf_tables.read_outputs(module)] == [("arn", "ARN of `the thing`.")]


def test_renders_markdown_tables(tmp_path: Path) -> None:
    module = _module(tmp_path, VARIABLES.split('variable "untyped"')[0])
    table = tf_tables.inputs_table(tf_tables.read_variables(module)).splitlines()
    assert table[0] == "| Name | Description | Type | Default | Required |"
    assert table[2].startswith("| `plain` | ") and table[2].endswith(" | `string` | n/a | yes |")
    assert "\\<name_prefix>" in table[2]  # not an HTML tag
    assert "Objects \\| with a pipe." in table[4]
    assert tf_tables.outputs_table(tf_tables.read_outputs(module)).splitlines()[2] == "| `arn` | ARN of `the thing`. |"
    assert tf_tables.inputs_table([]) == "No inputs." and tf_tables.outputs_table([]) == "No outputs."


def test_a_description_must_be_a_plain_string(tmp_path: Path) -> None:
    with pytest.raises(tf_tables.HclError, match="untyped.*plain string"):
        tf_tables.read_variables(_module(tmp_path))


def test_a_variable_without_description_is_an_error(tmp_path: Path) -> None:
    module = _module(tmp_path, 'variable "x" {\n  type = string\n}\n')
    with pytest.raises(tf_tables.HclError, match="variable x has no description"):
        tf_tables.read_variables(module)


def test_an_unexpected_block_is_an_error_not_skipped(tmp_path: Path) -> None:
    module = _module(tmp_path, 'variable "x" {\n  description = "x"\n}\nlocals {\n  y = 1\n}\n')
    with pytest.raises(tf_tables.HclError, match="expected a labelled block"):
        tf_tables.read_variables(module)


def test_a_new_variable_makes_the_readme_stale_until_written(tmp_path: Path) -> None:
    module = _module(tmp_path, VARIABLES.split('variable "untyped"')[0])
    readme = module / "README.md"
    readme.write_text(
        f"# mod\n\n## Inputs\n\n{tf_tables.INPUTS_BEGIN}\n{tf_tables.INPUTS_END}\n\n"
        f"## Outputs\n\n{tf_tables.OUTPUTS_BEGIN}\n{tf_tables.OUTPUTS_END}\n\nAfter.\n"
    )
    readme.write_text(tf_tables.render(readme, module))
    assert readme.read_text().endswith(f"{tf_tables.OUTPUTS_END}\n\nAfter.\n")
    docs = {readme: module}
    assert tf_tables.stale(docs) == []

    with (module / "variables.tf").open("a") as f:
        f.write('\nvariable "added" {\n  description = "New."\n  type        = bool\n  default     = false\n}\n')
    assert tf_tables.stale(docs) == [f"{readme}: tables differ from {module}/*.tf"]
    readme.write_text(tf_tables.render(readme, module))
    assert "| `added` | New. | `bool` | `false` | no |" in readme.read_text()
    assert tf_tables.stale(docs) == []


def test_markers_must_appear_once(tmp_path: Path) -> None:
    module = _module(tmp_path, VARIABLES.split('variable "untyped"')[0])
    readme = module / "README.md"
    readme.write_text(f"{tf_tables.INPUTS_BEGIN}\n{tf_tables.INPUTS_END}\n")
    with pytest.raises(tf_tables.HclError, match="BEGIN_TF_OUTPUTS"):
        tf_tables.render(readme, module)


def test_the_repository_modules_parse() -> None:
    for markdown, module in tf_tables.documented_modules().items():
        assert tf_tables.read_variables(module) or module.parent.name == "examples", module
        assert tf_tables.read_outputs(module), module
        assert markdown.name in ("README.md", "deploy.md")
